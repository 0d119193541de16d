//go:build !linux

package main

// stopWithParent does nothing where there is no parent-death signal.
func stopWithParent() {}
