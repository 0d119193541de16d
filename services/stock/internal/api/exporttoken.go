package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// exportTokenVersion is the layout of exportToken; a token of another version is invalid.
const exportTokenVersion = 1

// maxExportToken bounds a resume_token's length: a real one is about 200 bytes.
const maxExportToken = 1024

// exportToken is a resume_token, decoded: JSON, then base64url without padding. It names
// the request it belongs to (a fingerprint of every field but resume_token), the snapshot it
// reads, and the position after the message that carried it: the last row sent (symbol and
// time; no symbol before any row) and the batches sent so far.
type exportToken struct {
	Version     int    `json:"v"`
	Fingerprint string `json:"fp"`
	Snapshot    string `json:"snap"`
	Symbol      string `json:"sym,omitempty"`
	TimeMicros  int64  `json:"ts,omitempty"`
	Batches     int64  `json:"n"`
}

// snapshotID is the shape of pg_export_snapshot's identifiers (PostgreSQL 15:
// "%08X-%08X-%d", backend id, local transaction id, count). The token's snapshot goes into
// SET TRANSACTION SNAPSHOT as a literal, so nothing else may pass.
var snapshotID = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{8}-[0-9]{1,9}$`)

// symbolText is the symbols' shape (stock.stocks' CHECK).
var symbolText = regexp.MustCompile(`^[A-Z][A-Z0-9.-]{0,9}$`)

func (t exportToken) encode() string {
	b, _ := json.Marshal(t) //nolint:errchkjson // plain fields: never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// errExportToken is why a token does not decode; decodeExportToken's callers wrap it.
var errExportToken = errors.New("not a resume_token of ExportPrices")

// decodeExportToken decodes a resume_token; it does not check the fingerprint.
func decodeExportToken(s string) (exportToken, error) {
	var t exportToken
	if len(s) > maxExportToken {
		return t, errExportToken
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, errExportToken
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil || dec.More() {
		return exportToken{}, errExportToken
	}
	switch {
	case t.Version != exportTokenVersion,
		len(t.Fingerprint) != 32 || !isHex(t.Fingerprint),
		!snapshotID.MatchString(t.Snapshot),
		t.Symbol != "" && !symbolText.MatchString(t.Symbol),
		t.Symbol == "" && t.TimeMicros != 0,
		t.Batches < 0:
		return exportToken{}, errExportToken
	}
	return t, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// after is the time the token's symbol goes on after.
func (t exportToken) after() time.Time { return time.UnixMicro(t.TimeMicros).UTC() }

// exportFingerprint digests every field of req that shapes the export's bytes, defaults
// applied, so a token resumes only the export it came from.
func exportFingerprint(req *stockv1.ExportPricesRequest) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	ts := func(set bool, t time.Time) string {
		if !set {
			return "-"
		}
		return strconv.FormatInt(t.UnixNano(), 10)
	}
	field(req.GetFilter())
	field(ts(req.GetStartTime() != nil, req.GetStartTime().AsTime()))
	field(ts(req.GetEndTime() != nil, req.GetEndTime().AsTime()))
	field(exportFormat(req).String())
	field(strconv.Itoa(exportBatchSize(req)))
	field(req.GetRecommendationSource())
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// exportTokenInvalid is the INVALID_ARGUMENT of a token that is not this request's.
func exportTokenInvalid(why string) error {
	return apierr.Newf(apierr.ExportTokenInvalid, nil, "resume_token: %s", why)
}

// exportFormat is req's format, the default applied.
func exportFormat(req *stockv1.ExportPricesRequest) stockv1.ExportFormat {
	if req.GetFormat() == stockv1.ExportFormat_EXPORT_FORMAT_UNSPECIFIED {
		return stockv1.ExportFormat_EXPORT_FORMAT_PROTO
	}
	return req.GetFormat()
}

// exportBatchSize is req's batch size, the default applied.
func exportBatchSize(req *stockv1.ExportPricesRequest) int {
	if req.GetBatchSize() == 0 {
		return defaultExportBatch
	}
	return int(req.GetBatchSize())
}
