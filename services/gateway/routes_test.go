package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/api/serviceconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// gatewayRules is the HTTP mapping the gateway is generated from.
const gatewayRules = "../../proto/gateway.yaml"

// unroutedRules are rules the gateway leaves out on purpose, each with the reason. Their
// paths must answer 404, so that a rule cannot go missing unnoticed either.
var unroutedRules = map[string]string{
	"pgfleet.ops.v1.DatabaseMonitor.GetDatabaseStatus": "one path could name only one of the three services: /monitoring/database asks them all",
}

// TestRoutes proves that every HTTP rule of proto/gateway.yaml (additional bindings
// included) reaches its RPC on its service: a rule that another pattern captures
// (grpc-gateway tries the pattern registered last first, so "{session_id}" can swallow
// "38:next") fails here. Each rule's URL is built from its template with sample values,
// sent to a gateway whose upstreams are gRPC servers that record the calls they get, and the
// recorded method, upstream and path fields must be the rule's. No database is involved.
func TestRoutes(t *testing.T) {
	t.Parallel()
	rules := loadRules(t, gatewayRules)
	rec := &recorder{calls: make(map[string][]recordedCall)}
	f := &fleet{}
	for name, p := range map[string]**apptest.Process{"stock": &f.stock, "portfolio": &f.portfolio, "interview": &f.interview} {
		*p = &apptest.Process{Addr: rec.serve(t, name)}
	}
	gw := startGateway(t, f, nil)

	var mu sync.Mutex
	reached := make(map[string]bool) // selector -> its RPC was called through its rule
	t.Run("rules", func(t *testing.T) {
		for i, r := range rules {
			t.Run(fmt.Sprintf("%s_%d", r.selector[strings.LastIndex(r.selector, ".")+1:], i), func(t *testing.T) {
				t.Parallel()
				if checkRoute(t, gw, rec, r, fmt.Sprintf("routes-test/%d", i)) {
					mu.Lock()
					reached[r.selector] = true
					mu.Unlock()
				}
			})
		}
	})

	// Every RPC of a service the rules map must have a rule, and every rule must have been
	// reached (or be left out on purpose).
	services := make(map[protoreflect.FullName]bool)
	ruled := make(map[string]bool)
	for _, r := range rules {
		ruled[r.selector] = true
		if md, err := methodDescriptor(r.selector); err == nil {
			services[md.Parent().FullName()] = true
		}
	}
	for name := range services {
		d, _ := protoregistry.GlobalFiles.FindDescriptorByName(name)
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			if sel := string(methods.Get(i).FullName()); !ruled[sel] {
				t.Errorf("%s has no HTTP rule in %s: it cannot be called over REST", sel, gatewayRules)
			}
		}
	}
	for sel := range ruled {
		if _, skip := unroutedRules[sel]; !skip && !reached[sel] {
			t.Errorf("%s: no request through its rule reached it", sel)
		}
	}
}

// httpRule is one binding of a rule: an additional binding carries its parent's selector.
type httpRule struct {
	selector, method, path, body string
}

// loadRules reads a google.api.Service YAML file into its bindings, in file order.
func loadRules(tb testing.TB, path string) []httpRule {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	var svc serviceconfig.Service // "type: google.api.Service" is no field of the message
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, &svc); err != nil {
		tb.Fatalf("%s is no google.api.Service: %v", path, err)
	}
	var out []httpRule
	var add func(sel string, r *annotations.HttpRule)
	add = func(sel string, r *annotations.HttpRule) {
		h := httpRule{selector: sel, body: r.GetBody()}
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			h.method, h.path = http.MethodGet, p.Get
		case *annotations.HttpRule_Put:
			h.method, h.path = http.MethodPut, p.Put
		case *annotations.HttpRule_Post:
			h.method, h.path = http.MethodPost, p.Post
		case *annotations.HttpRule_Delete:
			h.method, h.path = http.MethodDelete, p.Delete
		case *annotations.HttpRule_Patch:
			h.method, h.path = http.MethodPatch, p.Patch
		case *annotations.HttpRule_Custom:
			h.method, h.path = p.Custom.GetKind(), p.Custom.GetPath()
		default:
			tb.Fatalf("%s: rule %s has no pattern", path, sel)
		}
		out = append(out, h)
		for _, ab := range r.GetAdditionalBindings() {
			add(sel, ab)
		}
	}
	for _, r := range svc.GetHttp().GetRules() {
		add(r.GetSelector(), r)
	}
	if len(out) == 0 {
		tb.Fatalf("%s has no rules", path)
	}
	return out
}

// methodDescriptor finds a selector ("pgfleet.stock.v1.StockService.GetStock") among the
// generated descriptors the gateway links.
func methodDescriptor(selector string) (protoreflect.MethodDescriptor, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(selector))
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a method", selector, d)
	}
	return md, nil
}

// templateVar matches a path template variable: {field.path} or {field.path=segments}.
var templateVar = regexp.MustCompile(`\{([a-z0-9_.]+)(=[^}]*)?\}`)

// checkRoute sends a request built from r, tagged by its User-Agent (forwarded as
// grpcgateway-user-agent metadata), and reports whether exactly r's RPC got it with the
// path's sample values in their fields.
func checkRoute(t *testing.T, gw *testGateway, rec *recorder, r httpRule, tag string) bool {
	t.Helper()
	md, err := methodDescriptor(r.selector)
	if err != nil {
		t.Fatalf("rule %s %s selects %s, which the generated descriptors lack: %v", r.method, r.path, r.selector, err)
	}
	// Each variable gets a sample of its field's kind: the path must bind it, the RPC
	// must receive it.
	want := make(map[string]string)
	var bad error
	path := templateVar.ReplaceAllStringFunc(r.path, func(v string) string {
		m := templateVar.FindStringSubmatch(v)
		if m[2] != "" && m[2] != "=*" {
			bad = fmt.Errorf("variable %s: only {field} and {field=*} are sampled; extend checkRoute", v)
		}
		fd, err := fieldByPath(md.Input(), m[1])
		if err != nil {
			bad = err
			return v
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			want[m[1]] = "s42"
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind,
			protoreflect.Sint32Kind, protoreflect.Sint64Kind:
			want[m[1]] = "42"
		default:
			bad = fmt.Errorf("variable %s: no sample for a %s field", v, fd.Kind())
		}
		return want[m[1]]
	})
	if bad != nil {
		t.Fatalf("rule %s %s: %v", r.method, r.path, bad)
	}
	body := ""
	if r.body != "" {
		body = "{}"
	}

	resp := gw.do(t, r.method, path, body, "User-Agent", tag)
	calls := rec.take(tag)
	if unrouted, ok := unroutedRules[r.selector]; ok {
		if resp.code != http.StatusNotFound || len(calls) != 0 {
			t.Errorf("%s %s (%s, left out: %s) = %v after %d calls, want 404 and none", r.method, path, r.selector, unrouted, resp, len(calls))
		}
		return false
	}
	wantType := "application/json"
	switch {
	case gateway.IsWatchMethod(md):
		wantType = "text/event-stream"
	case md.IsStreamingServer():
		wantType = "application/x-ndjson"
	}
	if resp.code != http.StatusOK || resp.header.Get("Content-Type") != wantType {
		t.Errorf("%s %s (rule of %s) = %v, Content-Type %q; want 200 %s", r.method, path, r.selector, resp, resp.header.Get("Content-Type"), wantType)
	}
	wantMethod := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	wantUpstream := strings.Split(r.selector, ".")[1] // pgfleet.<service>.v1...
	if len(calls) != 1 || calls[0].method != wantMethod || calls[0].upstream != wantUpstream {
		t.Errorf("%s %s (rule of %s) called %v, want one call of %s on %s", r.method, path, r.selector, calls, wantMethod, wantUpstream)
		return false
	}
	if len(calls[0].requests) == 0 {
		t.Errorf("%s %s: %s got no request message", r.method, path, wantMethod)
		return false
	}
	req := calls[0].requests[0].ProtoReflect()
	for field, sample := range want {
		if got := fieldValue(req, field); got != sample {
			t.Errorf("%s %s: %s got %s = %q, want %q from the path", r.method, path, wantMethod, field, got, sample)
		}
	}
	return !t.Failed()
}

// fieldByPath resolves "question.id" in msg.
func fieldByPath(msg protoreflect.MessageDescriptor, path string) (protoreflect.FieldDescriptor, error) {
	var fd protoreflect.FieldDescriptor
	for i, name := range strings.Split(path, ".") {
		if i > 0 {
			if msg = fd.Message(); msg == nil {
				return nil, fmt.Errorf("%s: %s is not a message", path, fd.Name())
			}
		}
		if fd = msg.Fields().ByName(protoreflect.Name(name)); fd == nil {
			return nil, fmt.Errorf("%s: %s has no field %s", path, msg.FullName(), name)
		}
	}
	return fd, nil
}

// fieldValue renders the value at path ("question.id") in m as its text.
func fieldValue(m protoreflect.Message, path string) string {
	names := strings.Split(path, ".")
	for _, name := range names[:len(names)-1] {
		m = m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name))).Message()
	}
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(names[len(names)-1]))).String()
}

// recorder is a gRPC server for every service at once: it records each call's method,
// upstream and request messages under the caller's tag, and answers an empty message.
type recorder struct {
	mu    sync.Mutex
	calls map[string][]recordedCall // by tag
}

type recordedCall struct {
	upstream, method string
	requests         []proto.Message
	authorization    []string // the call's authorization metadata
}

func (c recordedCall) String() string { return c.upstream + ":" + c.method }

// serve starts a recording server for upstream on a free port until tb ends, and returns
// its address.
func (rec *recorder) serve(tb testing.TB, upstream string) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		return rec.handle(upstream, stream)
	}))
	go srv.Serve(lis) //nolint:errcheck // returns when Stop closes the listener
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func (rec *recorder) handle(upstream string, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	md, _ := metadata.FromIncomingContext(stream.Context())
	input := (&emptypb.Empty{}).ProtoReflect().Descriptor()
	if d, err := methodDescriptor(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")); err == nil {
		input = d.Input()
	}
	c := recordedCall{upstream: upstream, method: method, authorization: md.Get("authorization")}
	for {
		m := dynamicpb.NewMessage(input)
		err := stream.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		c.requests = append(c.requests, m)
	}
	if tags := md.Get("grpcgateway-user-agent"); len(tags) == 1 {
		rec.mu.Lock()
		rec.calls[tags[0]] = append(rec.calls[tags[0]], c)
		rec.mu.Unlock()
	}
	// Zero bytes decode as any response message: an empty one, or one batch of a stream.
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	if tags := md.Get("grpcgateway-user-agent"); len(tags) == 1 && strings.HasSuffix(tags[0], holdTag) {
		<-stream.Context().Done() // a stream held open until its client goes
	}
	return nil
}

// holdTag ends the tag of a call whose stream the recorder keeps open after its message.
const holdTag = "/hold"

// take returns and forgets the calls recorded under tag.
func (rec *recorder) take(tag string) []recordedCall {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	calls := rec.calls[tag]
	delete(rec.calls, tag)
	return calls
}
