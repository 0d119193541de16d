// Package files is the ingestion source of daily bars dropped as files in a directory
// (INGEST_DIR): *.csv with the header symbol,time,open,high,low,close,volume, and *.ndjson
// with one object of the same fields a line. Files are read in name order and streamed in
// batches of 1000 bars, so memory stays bounded whatever their size; a row that does not
// parse becomes a Reject whose Ref is "file:line". After a run that succeeded, Commit moves
// every file the run read to INGEST_DIR/done/; a failed run leaves them for its retry.
//
// Producers must make a file visible only once it is complete: write "name.tmp" (ignored
// here), then rename it to "name.csv" or "name.ndjson" (a rename within a directory is
// atomic). Only regular files directly in the directory are read: a symbolic link, a FIFO or
// a device is refused as a whole, with a reason, and left in place. A file whose size or
// modification time moves while it is read is refused from there on and left in place, to be
// read again by the next run; bars of it written before the change stay (writes are
// idempotent by symbol and day).
//
// The request's symbols, if any, select the bars; its From and To do not: a file holds what
// its producer wants ingested, backfills included.
package files

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
)

// BatchSize is the most bars one emit carries.
const BatchSize = 1000

// maxLine is the longest NDJSON line read; a longer one is refused.
const maxLine = 64 << 10

// DoneDir is where Commit moves the files a successful run read.
const DoneDir = "done"

// Source reads one directory. Make one per run (Commit moves what that run read).
type Source struct {
	dir  string
	read []string // names of the files read to their end, for Commit
}

var _ source.Source = (*Source)(nil)

// New returns a Source over dir.
func New(dir string) *Source { return &Source{dir: dir} }

// Name is "files".
func (s *Source) Name() string { return "files" }

// Fetch reads every *.csv and *.ndjson file of the directory, in name order.
func (s *Source) Fetch(ctx context.Context, req source.Request, emit func([]source.Bar, []source.Reject) error) error {
	entries, err := os.ReadDir(s.dir) // sorted by name
	if err != nil {
		return fmt.Errorf("read %s: %w", s.dir, err)
	}
	want := map[string]bool{}
	for _, sym := range req.Symbols {
		want[sym] = true
	}
	b := &batcher{emit: emit, want: want}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".csv" && ext != ".ndjson" {
			continue // *.tmp (being written), done/, anything else
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		ok, err := s.readFile(ctx, name, b)
		if err != nil {
			return err
		}
		if ok {
			s.read = append(s.read, name)
		}
	}
	return b.flush()
}

// readFile streams one file into b; ok is false if the file was refused (left in place).
func (s *Source) readFile(ctx context.Context, name string, b *batcher) (ok bool, err error) {
	path := filepath.Join(s.dir, name)
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // gone since the listing: another reader moved it
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return false, b.reject(source.Reject{Ref: name, Reason: fmt.Sprintf("not a regular file (%s): only regular files directly in INGEST_DIR are read", info.Mode().Type())})
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", name, err)
	}
	if !os.SameFile(info, opened) {
		return false, b.reject(source.Reject{Ref: name, Reason: "replaced while opened: read again next run"})
	}
	// Before each batch leaves, the file must still be as it was opened.
	b.check = func() error {
		now, err := f.Stat()
		if err != nil {
			return err
		}
		if now.Size() != opened.Size() || !now.ModTime().Equal(opened.ModTime()) {
			return errChanged
		}
		return nil
	}
	defer func() { b.check = nil }()
	r := bufio.NewReaderSize(f, 256<<10)
	if filepath.Ext(name) == ".csv" {
		err = readCSV(ctx, name, r, b)
	} else {
		err = readNDJSON(ctx, name, r, b)
	}
	if err == nil {
		err = b.flush() // a file's last bars leave before the next file: checked against it
	}
	if errors.Is(err, errChanged) {
		b.pending = b.pending[:0] // bars of the changed file not sent yet are dropped with it
		return false, b.reject(source.Reject{Ref: name, Reason: "changed while read (size or modification time moved): left in place, read again next run; write name.tmp, then rename"})
	}
	return err == nil, err
}

var errChanged = errors.New("file changed while read")

// columns are the fields of a bar, as CSV headers and NDJSON keys.
var columns = []string{"symbol", "time", "open", "high", "low", "close", "volume"}

func readCSV(ctx context.Context, name string, r io.Reader, b *batcher) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil || !slices.Equal(trimAll(head), columns) {
		return b.reject(source.Reject{Ref: name + ":1", Reason: "the header must be " + strings.Join(columns, ","),
			Raw: strings.Join(head, ",")})
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		ref := fmt.Sprintf("%s:%d", name, line)
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			if err := b.reject(source.Reject{Ref: fmt.Sprintf("%s:%d", name, perr.Line), Reason: perr.Err.Error(), Raw: strings.Join(rec, ",")}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if len(rec) != len(columns) {
			if err := b.reject(source.Reject{Ref: ref, Reason: fmt.Sprintf("has %d fields, want %d", len(rec), len(columns)), Raw: strings.Join(rec, ",")}); err != nil {
				return err
			}
			continue
		}
		bar, reason := parseBar(rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6])
		bar.Ref = ref
		if err := b.add(bar, reason, strings.Join(rec, ",")); err != nil {
			return err
		}
	}
}

func trimAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(s, "\uFEFF")))
	}
	return out
}

// jsonBar is an NDJSON line: prices and volume may be JSON numbers or strings.
type jsonBar struct {
	Symbol string          `json:"symbol"`
	Time   string          `json:"time"`
	Open   json.RawMessage `json:"open"`
	High   json.RawMessage `json:"high"`
	Low    json.RawMessage `json:"low"`
	Close  json.RawMessage `json:"close"`
	Volume json.RawMessage `json:"volume"`
}

func readNDJSON(ctx context.Context, name string, r *bufio.Reader, b *batcher) error {
	for line := 1; ; line++ {
		text, tooLong, err := readLine(r)
		if errors.Is(err, io.EOF) && len(text) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		ref := fmt.Sprintf("%s:%d", name, line)
		switch {
		case tooLong:
			if err := b.reject(source.Reject{Ref: ref, Reason: fmt.Sprintf("line longer than %d bytes", maxLine), Raw: string(text)}); err != nil {
				return err
			}
			continue
		case len(strings.TrimSpace(string(text))) == 0:
			continue
		}
		var jb jsonBar
		dec := json.NewDecoder(strings.NewReader(string(text)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jb); err != nil {
			if err := b.reject(source.Reject{Ref: ref, Reason: "not a JSON bar: " + err.Error(), Raw: string(text)}); err != nil {
				return err
			}
			continue
		}
		bar, reason := parseBar(jb.Symbol, jb.Time, jsonText(jb.Open), jsonText(jb.High), jsonText(jb.Low), jsonText(jb.Close), jsonText(jb.Volume))
		bar.Ref = ref
		if err := b.add(bar, reason, string(text)); err != nil {
			return err
		}
	}
}

// readLine reads one line without its newline; a line over maxLine is skipped to its end
// and reported tooLong, with its first bytes.
func readLine(r *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			tooLong = true
			if len(line) < 256 {
				line = append(line, chunk[:min(len(chunk), 256)]...)
			}
		} else {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return []byte(strings.TrimRight(string(line), "\r\n")), tooLong, err
	}
}

// jsonText is a JSON string's content or a number's text; "" for anything else.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// parseBar reads a bar's fields; reason says why it cannot, else "". Prices stay text: the
// pipeline checks them with IngestPrices' rules.
func parseBar(symbol, ts, open, high, low, closePrice, volume string) (source.Bar, string) {
	bar := source.Bar{Symbol: strings.TrimSpace(symbol), Open: strings.TrimSpace(open), High: strings.TrimSpace(high),
		Low: strings.TrimSpace(low), Close: strings.TrimSpace(closePrice)}
	t, err := parseTime(strings.TrimSpace(ts))
	if err != nil {
		return bar, fmt.Sprintf("time %q: want RFC 3339 or YYYY-MM-DD", ts)
	}
	bar.Time = t
	v, err := strconv.ParseInt(strings.TrimSpace(volume), 10, 64)
	if err != nil {
		return bar, fmt.Sprintf("volume %q: want a whole number", volume)
	}
	bar.Volume = v
	return bar, ""
}

func parseTime(s string) (time.Time, error) {
	if len(s) == len("2006-01-02") {
		return time.Parse(time.DateOnly, s)
	}
	return time.Parse(time.RFC3339Nano, s)
}

// batcher gathers bars and rejects and emits them BatchSize bars at a time.
type batcher struct {
	emit    func([]source.Bar, []source.Reject) error
	want    map[string]bool // empty: every symbol
	pending []source.Bar
	rejects []source.Reject
	check   func() error // the file being read is unchanged; nil between files
}

func (b *batcher) add(bar source.Bar, reason, raw string) error {
	if reason != "" {
		return b.reject(source.Reject{Ref: bar.Ref, Reason: reason, Raw: raw})
	}
	if len(b.want) > 0 && !b.want[bar.Symbol] {
		return nil // not asked for
	}
	b.pending = append(b.pending, bar)
	if len(b.pending) >= BatchSize {
		return b.flush()
	}
	return nil
}

func (b *batcher) reject(r source.Reject) error {
	if len(r.Raw) > 256 {
		r.Raw = r.Raw[:256]
	}
	b.rejects = append(b.rejects, r)
	if len(b.rejects) >= BatchSize {
		return b.flush()
	}
	return nil
}

func (b *batcher) checkNow() error {
	if b.check == nil {
		return nil
	}
	return b.check()
}

func (b *batcher) flush() error {
	if len(b.pending) == 0 && len(b.rejects) == 0 {
		return nil
	}
	if err := b.checkNow(); err != nil {
		return err
	}
	err := b.emit(b.pending, b.rejects)
	b.pending, b.rejects = make([]source.Bar, 0, BatchSize), nil
	return err
}

// Commit moves the files the run read to done/, where a later run does not look.
func (s *Source) Commit(_ context.Context) error {
	if len(s.read) == 0 {
		return nil
	}
	done := filepath.Join(s.dir, DoneDir)
	if err := os.MkdirAll(done, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", done, err)
	}
	for _, name := range s.read {
		if err := os.Rename(filepath.Join(s.dir, name), filepath.Join(done, name)); err != nil {
			return fmt.Errorf("move %s to %s/: %w", name, DoneDir, err)
		}
	}
	s.read = nil
	return nil
}
