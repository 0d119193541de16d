package outbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pgfleet/pgfleet/pkg/migrate"
)

// Migration is the outbox's DDL as a migration of schema at version (see migrate.Step), so
// that every service creates the same table from one definition.
func Migration(version int64, schema string) migrate.Step {
	n := namesOf(schema)
	return migrate.Step{
		Version: version,
		Up:      Schema(schema),
		Down:    "DROP TABLE " + n.head + ";\nDROP TABLE " + n.table + ";\nDROP SEQUENCE " + n.appendSeq + ";\n",
	}
}

// NewEvent is an event whose type is payload's full message name (e.g.
// "pgfleet.stock.v1.LatestPriceChanged") and whose payload is payload serialized.
func NewEvent(aggregateType, aggregateID string, payload proto.Message) (Event, error) {
	b, err := proto.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("outbox: marshal %T: %w", payload, err)
	}
	return Event{
		AggregateType: aggregateType,
		AggregateID:   aggregateID,
		Type:          string(payload.ProtoReflect().Descriptor().FullName()),
		Payload:       b,
	}, nil
}

// ErrCursorMalformed is returned by ParseCursor for a string that is not a cursor of the schema.
var ErrCursorMalformed = errors.New("outbox: malformed cursor")

// cursorPrefix versions the cursor's format.
const cursorPrefix = "v1."

// Cursor is the opaque resume cursor of position in schema's outbox: clients hand it back
// as is, and a cursor of another schema is refused rather than misread.
func Cursor(schema string, position int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + schema + "." + strconv.FormatInt(position, 10)))
}

// ParseCursor returns the position a Cursor of schema holds, or ErrCursorMalformed.
func ParseCursor(schema, s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 200 {
		return 0, ErrCursorMalformed
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix+schema+".")
	if !ok {
		return 0, ErrCursorMalformed
	}
	pos, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || pos < 0 || strconv.FormatInt(pos, 10) != rest {
		return 0, ErrCursorMalformed
	}
	return pos, nil
}
