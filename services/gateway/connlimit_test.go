package main

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnLimit: a listener limited to two connections keeps two open at most; a third
// client is not refused but served once the full listener has turned keep-alives off, which
// closes an idle connection; with room again, keep-alives come back.
func TestConnLimit(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 10 * time.Second}
	limited := newConnLimit(lis, 2, srv.SetKeepAlivesEnabled)
	go func() { _ = srv.Serve(limited) }()
	t.Cleanup(func() { srv.Close() })
	url := "http://" + lis.Addr().String() + "/"

	// Each client has a transport of its own, so each holds a keep-alive connection.
	get := func(c *http.Client) *http.Response {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d, want 200", resp.StatusCode)
		}
		return resp
	}
	clients := make([]*http.Client, 3)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
		t.Cleanup(clients[i].CloseIdleConnections)
	}
	get(clients[0])
	get(clients[1]) // two idle keep-alive connections: the listener is full
	get(clients[2]) // waits to be accepted until keep-alives are off and an idle one closes
	if n := limited.open(); n > 2 {
		t.Errorf("%d connections open, want at most 2", n)
	}

	// Room again once the others have gone: keep-alives are back on.
	clients[0].CloseIdleConnections()
	clients[1].CloseIdleConnections()
	clients[2].CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp := get(clients[0]); !resp.Close {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("keep-alives still off with the listener empty")
		}
	}
}
