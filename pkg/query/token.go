package query

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/pgfleet/pgfleet/pkg/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A page token is base64url (unpadded) of a JSON payload followed by a tag:
//
//	{"v":1,"f":"<fingerprint>","k":["<sort-key value>", ...]} HMAC-SHA256(key, payload)[:16]
//
// The fingerprint hashes the normalized filter, the total order and Request.Extra, so a token
// only continues the listing it came from. Values are strings, decoded by the field types.
const (
	tokenVersion   = 1
	tagSize        = 16
	maxTokenLength = 4096
	// defaultTokenKey signs tokens when the service sets no key. Being public, it keeps out
	// garbage and edited tokens, not forgeries; tokens hold only sort-key values the caller
	// could read anyway, so forging one only moves where a listing starts.
	defaultTokenKey = "pgfleet/query default page token key; set PAGE_TOKEN_KEY"
)

// tokenPayload is the signed content of a page token.
type tokenPayload struct {
	Version     int      `json:"v"`
	Fingerprint []byte   `json:"f"`
	Values      []string `json:"k"`
}

// fingerprint identifies a listing: the filter, the order and the caller's extra parameters.
func fingerprint(filter *node, sort []sortKey, extra string) []byte {
	h := sha256.New()
	for _, part := range []string{filter.text(), orderText(sort), extra} {
		// Length prefixes keep ("a", "b") and ("ab", "") apart.
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return h.Sum(nil)[:8]
}

// NextPageToken returns the token of the page after the row whose sort-key values are last,
// given in SortFields order and in the Go types of the fields' Types (an Enum's may also be
// its protoreflect.Enum, a Timestamp's a *timestamppb.Timestamp).
func (q *Query) NextPageToken(last []any) (string, error) {
	if len(last) != len(q.sort) {
		return "", fmt.Errorf("query: page token from %d values, want %d (%v)",
			len(last), len(q.sort), q.SortFields())
	}
	p := tokenPayload{Version: tokenVersion, Fingerprint: q.fingerprint, Values: make([]string, len(last))}
	for i, v := range last {
		s, err := encodeValue(q.sort[i].field, v)
		if err != nil {
			return "", err
		}
		p.Values[i] = s
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("query: encode page token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(append(payload, q.tag(payload)...)), nil
}

// tag signs a token payload.
func (q *Query) tag(payload []byte) []byte {
	key := q.tokenKey
	if key == "" {
		key = defaultTokenKey
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(payload)
	return mac.Sum(nil)[:tagSize]
}

// decodeToken checks a page token against q and returns its sort-key values, typed.
func (q *Query) decodeToken(token string, extra bool) ([]any, error) {
	malformed := validate.Field("page_token", "malformed: pass next_page_token of a previous response unchanged")
	if len(token) > maxTokenLength {
		return nil, malformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) <= tagSize {
		return nil, malformed
	}
	payload, tag := raw[:len(raw)-tagSize], raw[len(raw)-tagSize:]
	if !hmac.Equal(tag, q.tag(payload)) {
		return nil, validate.Field("page_token", "malformed: altered, or not issued by this service")
	}
	var p tokenPayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Version != tokenVersion {
		return nil, malformed
	}
	if !bytes.Equal(p.Fingerprint, q.fingerprint) || len(p.Values) != len(q.sort) {
		if extra {
			return nil, validate.Field("page_token",
				"does not match the filter, order_by and other parameters of the request")
		}
		return nil, validate.Field("page_token", "does not match the filter and order_by of the request")
	}
	values := make([]any, len(p.Values))
	for i, s := range p.Values {
		v, err := decodeValue(q.sort[i].field.Type, s)
		// A signed token holds what a row held, but the key may be known (the default one
		// is public): a NUL would reach PostgreSQL, which refuses it in text (22021).
		if err != nil || validate.BadText(s, validate.Stored) != "" {
			return nil, malformed
		}
		values[i] = v
	}
	return values, nil
}

// encodeValue renders a row's value of f for a page token.
func encodeValue(f *field, v any) (string, error) {
	switch f.Type {
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Enum:
		switch e := v.(type) {
		case string:
			return e, nil
		case protoreflect.Enum:
			if d := f.Enum.Descriptor().Values().ByNumber(e.Number()); d != nil {
				return string(d.Name()), nil
			}
		}
	case Int:
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10), nil
		case int32:
			return strconv.FormatInt(int64(n), 10), nil
		case int:
			return strconv.Itoa(n), nil
		}
	case Float:
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'g', -1, 64), nil
		case float32:
			return strconv.FormatFloat(float64(n), 'g', -1, 64), nil
		}
	case Timestamp:
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format(time.RFC3339Nano), nil
		case interface{ AsTime() time.Time }: // *timestamppb.Timestamp
			return t.AsTime().UTC().Format(time.RFC3339Nano), nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	}
	return "", fmt.Errorf("query: page token value %v (%T) for %s field %q", v, v, f.Type, f.Name)
}

// validValue reports whether v is a value of f that a page token can hold.
func validValue(f *field, v any) bool {
	_, err := encodeValue(f, v)
	return err == nil
}

// decodeValue parses a page token value by the type of its field.
func decodeValue(t Type, s string) (any, error) {
	switch t {
	case Int:
		return strconv.ParseInt(s, 10, 64)
	case Float:
		return strconv.ParseFloat(s, 64)
	case Timestamp:
		return time.Parse(time.RFC3339Nano, s)
	case Bool:
		return strconv.ParseBool(s)
	}
	return s, nil
}

// literalText renders a filter value for a fingerprint.
func literalText(t Type, v any) string {
	switch t {
	case String, Enum, StringList, Text:
		return strconv.Quote(v.(string))
	case Timestamp:
		return strconv.Quote(v.(time.Time).UTC().Format(time.RFC3339Nano))
	}
	s, _ := encodeValue(&field{Type: t}, v)
	return s
}
