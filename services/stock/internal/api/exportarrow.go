package api

import (
	"bytes"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// ArrowResumeTokenKey is the key of a record batch's custom metadata that holds the
// resume_token of the message that carried it (none on the last batch), so that a client of
// the REST download, which sees only the Arrow stream, can resume too.
const ArrowResumeTokenKey = "pgfleet.resume_token"

// Decimals are numeric(20, 6) in stock.prices: decimal128(20, 6) holds them exactly.
var priceDecimal = &arrow.Decimal128Type{Precision: 20, Scale: 6}

var utcMicros = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// exportSchema is an Arrow export's schema: the bar, and with a recommendation source the
// point-in-time prediction's columns, null where none was known.
func exportSchema(withRec bool) *arrow.Schema {
	fields := []arrow.Field{
		{Name: "symbol", Type: arrow.BinaryTypes.String},
		{Name: "time", Type: utcMicros},
		{Name: "open", Type: priceDecimal},
		{Name: "high", Type: priceDecimal},
		{Name: "low", Type: priceDecimal},
		{Name: "close", Type: priceDecimal},
		{Name: "volume", Type: arrow.PrimitiveTypes.Int64},
	}
	if withRec {
		fields = append(fields,
			arrow.Field{Name: "rec_action", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "rec_target_price", Type: priceDecimal, Nullable: true},
			arrow.Field{Name: "rec_confidence", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			arrow.Field{Name: "rec_model_version", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "rec_predict_time", Type: utcMicros, Nullable: true},
		)
	}
	return arrow.NewSchema(fields, nil)
}

// arrowEncoder cuts an Arrow IPC stream into ExportPricesResponse.arrow_ipc pieces: the
// schema message, then one record batch each, the end-of-stream marker after the last.
type arrowEncoder struct {
	schema  *arrow.Schema
	withRec bool
	mem     memory.Allocator
	buf     bytes.Buffer
	w       *ipc.Writer
	started bool
	head    []byte // the schema message
	eos     []byte // the end-of-stream marker
}

func newArrowEncoder(withRec bool) (*arrowEncoder, error) {
	e := &arrowEncoder{schema: exportSchema(withRec), withRec: withRec, mem: memory.NewGoAllocator()}
	// A stream closed before any batch is the schema message and the end-of-stream marker:
	// the two pieces every export needs.
	var empty bytes.Buffer
	w := ipc.NewWriter(&empty, ipc.WithSchema(e.schema), ipc.WithAllocator(e.mem))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("arrow schema: %w", err)
	}
	const eosLen = 8 // continuation marker 0xFFFFFFFF, then a zero length
	b := empty.Bytes()
	e.head, e.eos = bytes.Clone(b[:len(b)-eosLen]), bytes.Clone(b[len(b)-eosLen:])
	e.w = ipc.NewWriter(&e.buf, ipc.WithSchema(e.schema), ipc.WithAllocator(e.mem))
	return e, nil
}

// schemaMessage returns the schema message; with eos, followed by the end-of-stream marker.
func (e *arrowEncoder) schemaMessage(eos bool) []byte {
	out := bytes.Clone(e.head)
	if eos {
		out = append(out, e.eos...)
	}
	return out
}

// batch encodes rows as one record batch message carrying token in its custom metadata
// (none if empty); with eos, followed by the end-of-stream marker.
func (e *arrowEncoder) batch(rows []store.ExportRow, token string, eos bool) ([]byte, error) {
	rec, err := e.record(rows, token)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	e.buf.Reset()
	if err := e.w.Write(rec); err != nil {
		return nil, fmt.Errorf("arrow batch: %w", err)
	}
	out := e.buf.Bytes()
	if !e.started { // the writer's first write starts with the schema, sent already
		e.started = true
		out = out[len(e.head):]
	}
	out = bytes.Clone(out)
	if eos {
		out = append(out, e.eos...)
	}
	return out, nil
}

func (e *arrowEncoder) record(rows []store.ExportRow, token string) (arrow.RecordBatch, error) {
	b := array.NewRecordBuilder(e.mem, e.schema)
	defer b.Release()
	for _, f := range b.Fields() {
		f.Reserve(len(rows))
	}
	sym := b.Field(0).(*array.StringBuilder)
	ts := b.Field(1).(*array.TimestampBuilder)
	var decs [4]*array.Decimal128Builder
	for i := range decs {
		decs[i] = b.Field(2 + i).(*array.Decimal128Builder)
	}
	vol := b.Field(6).(*array.Int64Builder)
	for i := range rows {
		r := &rows[i]
		sym.Append(r.Symbol)
		ts.Append(arrow.Timestamp(r.Time.UnixMicro()))
		for j, s := range [4]string{r.Open, r.High, r.Low, r.Close} {
			n, err := decimal6(s)
			if err != nil {
				return nil, err
			}
			decs[j].Append(n)
		}
		vol.Append(r.Volume)
	}
	if e.withRec {
		action := b.Field(7).(*array.StringBuilder)
		target := b.Field(8).(*array.Decimal128Builder)
		conf := b.Field(9).(*array.Float64Builder)
		model := b.Field(10).(*array.StringBuilder)
		pt := b.Field(11).(*array.TimestampBuilder)
		for i := range rows {
			r := &rows[i]
			if r.RecPredictTime == nil { // no prediction known at the bar's time
				action.AppendNull()
				target.AppendNull()
				conf.AppendNull()
				model.AppendNull()
				pt.AppendNull()
				continue
			}
			action.Append(*r.RecAction)
			if r.RecTargetPrice == nil {
				target.AppendNull()
			} else {
				n, err := decimal6(*r.RecTargetPrice)
				if err != nil {
					return nil, err
				}
				target.Append(n)
			}
			conf.Append(*r.RecConfidence)
			model.Append(*r.RecModelVersion)
			pt.Append(arrow.Timestamp(r.RecPredictTime.UnixMicro()))
		}
	}
	cols := make([]arrow.Array, len(b.Fields()))
	for i, f := range b.Fields() {
		cols[i] = f.NewArray()
	}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	var meta arrow.Metadata
	if token != "" {
		meta = arrow.NewMetadata([]string{ArrowResumeTokenKey}, []string{token})
	}
	return array.NewRecordBatchWithMetadata(e.schema, cols, int64(len(rows)), meta), nil
}

// decimal6 converts a non-negative numeric(20, 6) as text ("123.450000", "7") into its
// decimal128 at scale 6 without a detour through big numbers: the integer part has at most
// 14 digits, so it and its product with 10^6 fit in 64 and 128 bits.
func decimal6(s string) (decimal128.Num, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(whole) == 0 || len(whole) > 14 || len(frac) > 6 {
		return decimal128.Num{}, fmt.Errorf("export: decimal %q out of numeric(20, 6)", s)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return decimal128.Num{}, fmt.Errorf("export: decimal %q: %w", s, err)
	}
	var f uint64
	if frac != "" {
		if f, err = strconv.ParseUint(frac, 10, 64); err != nil {
			return decimal128.Num{}, fmt.Errorf("export: decimal %q: %w", s, err)
		}
		for range 6 - len(frac) {
			f *= 10
		}
	}
	hi, lo := bits.Mul64(w, 1_000_000)
	lo, carry := bits.Add64(lo, f, 0)
	return decimal128.New(int64(hi+carry), lo), nil //nolint:gosec // at most 10^20: hi is tiny
}
