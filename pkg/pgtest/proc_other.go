//go:build !linux

package pgtest

import "syscall"

// sysProcAttr runs the server as cred, in its own process group. Without Pdeathsig, a test
// binary that crashes leaves its server running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
