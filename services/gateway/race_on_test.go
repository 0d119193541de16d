//go:build race

package main

// raceBuild: this test binary runs with the race detector, and so do the processes the
// tests build for themselves where they ask for it (buildRace).
const raceBuild = true
