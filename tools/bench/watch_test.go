package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// The SSE reader joins data lines, keeps id and event, skips comments (heartbeats) and blank
// lines between events, takes "\r\n" line ends, and drops an event the stream cut short.
func TestSSEReader(t *testing.T) {
	t.Parallel()
	stream := ": heartbeat\n\n" +
		"data: {\"prices\":[]}\n\n" +
		"id: c1\r\nevent: message\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n" +
		": heartbeat\n" +
		"event: error\ndata: {\"code\":14}\n\n" +
		"data: cut"
	rd := newSSEReader(strings.NewReader(stream))
	want := []sseEvent{
		{data: `{"prices":[]}`},
		{id: "c1", event: "message", data: "{\"a\":\n1}"},
		{event: "error", data: `{"code":14}`},
	}
	for i, w := range want {
		got, err := rd.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got != w {
			t.Errorf("event %d = %+v, want %+v", i, got, w)
		}
	}
	if got, err := rd.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after the last event: %+v, %v; want io.ErrUnexpectedEOF", got, err)
	}
}

// An event's data is the response as the REST API renders it, or grpc-gateway's stream
// chunk around it.
func TestSSEPrices(t *testing.T) {
	t.Parallel()
	for _, data := range []string{
		`{"prices":[{"symbol":"S0001","close":"1012.5","open":"1"}],"cleared_symbols":[]}`,
		`{"result":{"prices":[{"symbol":"S0001","close":"1012.5"}]}}`,
	} {
		got, err := ssePrices(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if want := []watchPrice{{Symbol: "S0001", Close: "1012.5"}}; !slices.Equal(got, want) {
			t.Errorf("%s: %+v, want %+v", data, got, want)
		}
	}
	if _, err := ssePrices("not json"); err == nil {
		t.Error("ssePrices(not json) succeeded")
	}
}

// A delivered close price names its call whatever the decimal form.
func TestSeqOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"1000": 0, "1012": 12, "1012.000000": 12, "1012.5": 12} {
		if got, ok := seqOf(in); !ok || got != want {
			t.Errorf("seqOf(%q) = %d, %t; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "999", "abc", "-1"} {
		if got, ok := seqOf(in); ok {
			t.Errorf("seqOf(%q) = %d, want not ok", in, got)
		}
	}
}

// Only prices of calls acknowledged in the window count; a price that arrived before its
// call returned has a negative latency from the return and counts as early.
func TestJoinLatency(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	calls := []watchCall{
		{start: ms(0), end: ms(10), ok: true},     // 0: before the window
		{start: ms(100), end: ms(110), ok: true},  // 1
		{start: ms(120), end: ms(130), ok: false}, // 2: failed
		{start: ms(200), end: ms(210), ok: true},  // 3
		{start: ms(990), end: ms(1010), ok: true}, // 4: after the window
	}
	got := []delivery{
		{seq: 0, at: ms(15).UnixNano()},
		{seq: 1, at: ms(115).UnixNano()},
		{seq: 2, at: ms(135).UnixNano()},
		{seq: 3, at: ms(208).UnixNano()}, // before its call returned
		{seq: 4, at: ms(1020).UnixNano()},
		{seq: 9, at: ms(1020).UnixNano()}, // no such call
	}
	l := joinLatency(calls, ms(50), ms(1000), got)
	wantEnd := []time.Duration{5 * time.Millisecond, -2 * time.Millisecond}
	wantStart := []time.Duration{15 * time.Millisecond, 8 * time.Millisecond}
	if !slices.Equal(l.fromEnd, wantEnd) || !slices.Equal(l.fromStart, wantStart) || l.early != 1 {
		t.Errorf("joinLatency = %+v, want fromEnd %v, fromStart %v, early 1", l, wantEnd, wantStart)
	}
	p50, p99, mx := spread(l.fromEnd)
	if p50 != -2*time.Millisecond || p99 != 5*time.Millisecond || mx != 5*time.Millisecond {
		t.Errorf("spread = %v %v %v", p50, p99, mx)
	}
	if s := signedLatency(-2 * time.Millisecond); s != "-2.00 ms" {
		t.Errorf("signedLatency(-2ms) = %q", s)
	}
}

// A subscriber has reached the final prices once every symbol it watches shows the last
// acknowledged call's price or a later one (an unacknowledged call may have committed).
func TestWatchSubReached(t *testing.T) {
	t.Parallel()
	s := newWatchSub(7, false)
	if len(s.symbols) != watchPerSub || !slices.IsSorted(s.symbols) {
		t.Fatalf("symbols %v: want %d sorted", s.symbols, watchPerSub)
	}
	last := make([]int, watchSymbols)
	for i := range last {
		last[i] = 40
	}
	if s.reached(last) {
		t.Fatal("reached before any price")
	}
	for k, i := range s.symbols {
		s.seen[i].Store(int64(40 + k))
	}
	if !s.reached(last) {
		t.Error("not reached with every watched symbol at or past the last call")
	}
}
