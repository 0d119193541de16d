//go:build !linux

package supervise

import "syscall"

// sysProcAttr puts the child in a process group of its own. Without Pdeathsig, a parent killed
// with SIGKILL leaves its children running.
func sysProcAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
