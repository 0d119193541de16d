//go:build !race

package main

// raceBuild: this test binary runs without the race detector (race_on_test.go).
const raceBuild = false
