package gateway

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// Query parameters that name no field of the request message are refused with
// INVALID_ARGUMENT (reason MALFORMED_REQUEST) and a field violation naming each, instead of being ignored as
// grpc-gateway does: "?page_sise=2" must not quietly return the default page. The check runs
// on the upstream connection, where the RPC is known, so it covers every route alike,
// including those whose generated handler never reads the query (all fields bound by the
// path or the body) and server streams. It accepts what grpc-gateway can bind: proto or
// lowerCamel names, dotted paths into singular message fields, "map[key]" for maps. A name
// that is a field but bound from the path or a body: "*" is accepted and ignored, as
// grpc-gateway does.

type queryKey struct{}

// keepQuery is a grpc-gateway middleware: it puts the raw query in the request's context,
// which the upstream calls inherit.
func keepQuery(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if r.URL.RawQuery != "" {
			r = r.WithContext(context.WithValue(r.Context(), queryKey{}, r.URL.RawQuery))
		}
		next(w, r, params)
	}
}

// queryChecked is an upstream connection that refuses a call whose HTTP request had
// query parameters the RPC's request message has no field for.
type queryChecked struct{ grpc.ClientConnInterface }

func (c queryChecked) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if err := checkQuery(ctx, method); err != nil {
		return err
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

func (c queryChecked) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := checkQuery(ctx, method); err != nil {
		return nil, err
	}
	return c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
}

// checkQuery returns a *validate.Error naming every query parameter of the call's HTTP
// request that method's ("/pkg.Service/Method") request message cannot take, or nil.
func checkQuery(ctx context.Context, method string) error {
	raw, _ := ctx.Value(queryKey{}).(string)
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil { // the generated handler has refused it already if it reads the query
		return validate.Field("query", "malformed query string: %v", err)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")))
	if err != nil {
		return nil // not a generated method: nothing to check against
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil
	}
	var v validate.Violations
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if !queryField(md.Input(), key) {
			v.Add(key, "unknown query parameter: %s has no field %q", md.Input().FullName(), key)
		}
	}
	if err := v.Err(); err != nil {
		bad := err.(*validate.Error)
		bad.Reason = apierr.MalformedRequest // as for an unknown field in a JSON body
		return bad
	}
	return nil
}

// mapKey matches grpc-gateway's map syntax, "labels[key]".
var mapKey = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// queryField reports whether key names a field of msg as grpc-gateway resolves a query
// parameter: each dotted element a field's proto or JSON name, each but the last a singular
// message field.
func queryField(msg protoreflect.MessageDescriptor, key string) bool {
	if m := mapKey.FindStringSubmatch(key); m != nil {
		key = m[1]
	}
	names := strings.Split(key, ".")
	for i, name := range names {
		fields := msg.Fields()
		fd := fields.ByTextName(name)
		if fd == nil {
			fd = fields.ByJSONName(name)
		}
		if fd == nil {
			return false
		}
		if i == len(names)-1 {
			return true
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return false
		}
		msg = fd.Message()
	}
	return false
}
