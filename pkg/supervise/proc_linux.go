package supervise

import "syscall"

// sysProcAttr puts the child in a process group of its own and has the kernel send it death
// when the thread that started it dies (see Process.Start), which happens when we die.
func sysProcAttr(cred *syscall.Credential, death syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: death}
}
