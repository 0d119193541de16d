package main

import (
	"os"
	"syscall"
)

// stopWithParent asks the kernel for SIGTERM when our parent dies (`make run` killed
// outright): we then stop the fleet in order, as on Ctrl-C.
func stopWithParent() {
	ppid := os.Getppid()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if os.Getppid() != ppid { // it died before the request took effect
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
