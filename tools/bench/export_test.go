package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// arrowStream writes batches record batches of rows rows each (volume 1, 2, 3, ...) as one IPC
// stream, and returns it with its rows and volume sum.
func arrowStream(t *testing.T, batches, rows int) ([]byte, exportRun) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "symbol", Type: arrow.BinaryTypes.String},
		{Name: "volume", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	var want exportRun
	rb := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer rb.Release()
	for range batches {
		for range rows {
			want.rows++
			want.volume += want.rows
			rb.Field(0).(*array.StringBuilder).Append("S0000")
			rb.Field(1).(*array.Int64Builder).Append(want.rows)
		}
		rec := rb.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), want
}

// messages cuts stream into ExportPricesResponse messages of size bytes (and an empty one
// between each), as a server may split it anywhere; fail, if set, comes after the last.
func messages(stream []byte, size int, fail error) func() (*stockv1.ExportPricesResponse, error) {
	var msgs []*stockv1.ExportPricesResponse
	for len(stream) > 0 {
		n := min(size, len(stream))
		msgs = append(msgs, &stockv1.ExportPricesResponse{ArrowIpc: stream[:n]}, &stockv1.ExportPricesResponse{})
		stream = stream[n:]
	}
	return func() (*stockv1.ExportPricesResponse, error) {
		if len(msgs) == 0 {
			if fail != nil {
				return nil, fail
			}
			return nil, io.EOF
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}

// The arrow_ipc fields of an export's messages, concatenated, decode as one stream: every row
// counted and every volume summed, wherever the messages split it.
func TestDecodeArrow_messages(t *testing.T) {
	t.Parallel()
	stream, want := arrowStream(t, 3, 1000)
	for _, size := range []int{1, 7, 4096, len(stream)} {
		got, err := decodeArrow(&arrowMessages{recv: messages(stream, size, nil)})
		if err != nil {
			t.Fatalf("messages of %d bytes: %v", size, err)
		}
		if got != want {
			t.Errorf("messages of %d bytes: decodeArrow = %+v, want %+v", size, got, want)
		}
	}
}

// A stream that fails before its end-of-stream marker is an error, not fewer rows.
func TestDecodeArrow_cut(t *testing.T) {
	t.Parallel()
	stream, _ := arrowStream(t, 3, 1000)
	cut := errors.New("stream reset")
	_, err := decodeArrow(&arrowMessages{recv: messages(stream[:len(stream)/2], 512, cut)})
	if !errors.Is(err, cut) {
		t.Errorf("decodeArrow of a cut stream: %v, want %v", err, cut)
	}
}

// The SQL names the universe in full, and the sector subset is every 11th stock of it.
func TestExportUniverse(t *testing.T) {
	t.Parallel()
	all, sub := exportUniverse(false), exportUniverse(true)
	if len(all) != exportSymbols || all[0] != "S0000" || all[len(all)-1] != "S0199" {
		t.Errorf("universe = %d symbols %s..%s, want %d S0000..S0199", len(all), all[0], all[len(all)-1], exportSymbols)
	}
	if len(sub) != 19 || sub[1] != "S0011" {
		t.Errorf("subset = %v, want 19 symbols, every 11th", sub)
	}
	if sql := exportSQL(sub, 10); !strings.Contains(sql, "'{S0000,S0011,") || !strings.Contains(sql, "ts < '2000-01-11T00:00:00Z'") {
		t.Errorf("exportSQL = %s", sql)
	}
}

// Scenario 13 exports 2M rows by default and fewer in a smoke run, unless told how many.
func TestParseFlags_exportBars(t *testing.T) {
	t.Parallel()
	root := "../.."
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"-duration", "10s"}, 10_000},
		{[]string{"-duration", "1m"}, 10_000},
		{[]string{"-duration", "2s"}, 2_000},
		{[]string{"-duration", "100ms"}, 1_000},
		{[]string{"-duration", "2s", "-export-bars", "500"}, 500},
	}
	for _, tt := range tests {
		cfg, err := parseFlags(append([]string{"-root", root}, tt.args...))
		if err != nil {
			t.Fatalf("parseFlags(%v): %v", tt.args, err)
		}
		if cfg.exportBars != tt.want {
			t.Errorf("parseFlags(%v).exportBars = %d, want %d", tt.args, cfg.exportBars, tt.want)
		}
	}
}
