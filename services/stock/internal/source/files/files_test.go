package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/files"
)

// fetched is what one Fetch emitted.
type fetched struct {
	bars    []source.Bar
	rejects []source.Reject
	batches []int // bars per emit
}

func fetch(t *testing.T, s *files.Source, req source.Request, during func(batch int)) fetched {
	t.Helper()
	var f fetched
	err := s.Fetch(t.Context(), req, func(bars []source.Bar, rejects []source.Reject) error {
		f.bars = append(f.bars, bars...)
		f.rejects = append(f.rejects, rejects...)
		f.batches = append(f.batches, len(bars))
		if during != nil {
			during(len(f.batches))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return f
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func csvRows(n int, symbol string) string {
	var b strings.Builder
	b.WriteString("symbol,time,open,high,low,close,volume\n")
	day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&b, "%s,%s,1,2,0.5,1.5,%d\n", symbol, day.AddDate(0, 0, i).Format(time.DateOnly), i)
	}
	return b.String()
}

// TestFetch_formats: CSV and NDJSON in name order, both time forms, prices as text, batches
// of at most 1000, rows that do not parse as rejects with file:line, the request's symbols
// selecting bars, and *.tmp, other names and directories ignored.
func TestFetch_formats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.csv"), csvRows(2500, "BBB"))
	write(t, filepath.Join(dir, "a.ndjson"), `{"symbol":"AAA","time":"2026-12-01T00:00:00Z","open":"1.50","high":2,"low":1,"close":"1.75","volume":"10"}

{"symbol":"AAA","time":"yesterday","open":1,"high":1,"low":1,"close":1,"volume":1}
{"symbol":"AAA","time":"2026-12-02","open":1,"high":1,"low":1,"close":1,"volume":1,"extra":1}
{"symbol":"CCC","time":"2026-12-02","open":1,"high":1,"low":1,"close":1,"volume":1}
`+`{"symbol":"AAA","time":"2026-12-03","open":"`+strings.Repeat("9", 70000)+`"}`+"\n")
	write(t, filepath.Join(dir, "c.csv.tmp"), csvRows(3, "TMP"))
	write(t, filepath.Join(dir, "notes.txt"), "not bars")
	if err := os.Mkdir(filepath.Join(dir, "sub.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := fetch(t, files.New(dir), source.Request{Symbols: []string{"AAA", "BBB"}}, nil)
	if len(f.bars) != 2501 || f.bars[0].Symbol != "AAA" || f.bars[0].Open != "1.50" || f.bars[0].High != "2" ||
		f.bars[0].Ref != "a.ndjson:1" || f.bars[1].Ref != "b.csv:2" || f.bars[2500].Ref != "b.csv:2501" {
		t.Errorf("%d bars: first %+v, second %+v", len(f.bars), f.bars[0], f.bars[min(1, len(f.bars)-1)])
	}
	if !f.bars[1].Time.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) || f.bars[2500].Volume != 2499 {
		t.Errorf("bar times or volumes: %+v %+v", f.bars[1], f.bars[2500])
	}
	for _, n := range f.batches {
		if n > files.BatchSize {
			t.Errorf("a batch of %d bars", n)
		}
	}
	var refs []string
	for _, r := range f.rejects {
		refs = append(refs, r.Ref)
		if len(r.Raw) > 256 {
			t.Errorf("reject %s: raw of %d bytes", r.Ref, len(r.Raw))
		}
	}
	want := "a.ndjson:3 a.ndjson:4 a.ndjson:6 sub.csv"
	if strings.Join(refs, " ") != want {
		t.Errorf("rejects %v, want %s", f.rejects, want)
	}
}

// TestFetch_refused: a symbolic link and a FIFO are refused whole, unread; a file that grows
// while it is read is refused from there on; none of them is moved by Commit, the good file is.
func TestFetch_refused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.csv"), csvRows(1500, "AAA"))
	write(t, filepath.Join(dir, "b.csv"), csvRows(10, "BBB"))
	outside := filepath.Join(t.TempDir(), "x.csv")
	write(t, outside, csvRows(5, "XXX"))
	if err := os.Symlink(outside, filepath.Join(dir, "c.csv")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "d.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := files.New(dir)
	f := fetch(t, s, source.Request{}, func(batch int) {
		if batch == 1 { // a.csv's first 1000 bars left: its producer appends (the wrong way)
			out, err := os.OpenFile(filepath.Join(dir, "a.csv"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(out, "AAA,2030-01-01,1,1,1,1,1")
			out.Close()
		}
	})
	if len(f.bars) != 1000+10 {
		t.Errorf("%d bars, want a.csv's first batch and b.csv's 10", len(f.bars))
	}
	reasons := map[string]string{}
	for _, r := range f.rejects {
		reasons[r.Ref] = r.Reason
	}
	for ref, part := range map[string]string{"a.csv": "changed while read", "c.csv": "not a regular file", "d.csv": "not a regular file"} {
		if !strings.Contains(reasons[ref], part) {
			t.Errorf("%s: %q, want it to say %q (rejects %v)", ref, reasons[ref], part, f.rejects)
		}
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, moved := range map[string]bool{"a.csv": false, "b.csv": true, "c.csv": false, "d.csv": false} {
		_, err := os.Lstat(filepath.Join(dir, files.DoneDir, name))
		if (err == nil) != moved {
			t.Errorf("%s in done/: %v, want %v", name, err == nil, moved)
		}
	}
}
