package pgtest

import "syscall"

// sysProcAttr runs the server as cred, in its own process group (a ^C to `go test` reaches it
// only through Pdeathsig, once), and has the kernel stop it if its parent thread dies.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
}
