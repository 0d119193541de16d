package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
)

// Exit codes of the subcommands, as the fleet's CLI contract fixes them.
const (
	exitOK      = 0
	exitFailed  = 1 // not SERVING, a database error
	exitUsage   = 2 // unknown subcommand or flag, invalid configuration
	exitPending = 3 // migrate status: pending or unknown migrations
)

// Binary is what a service binary's main hands Main: who it is, how it reads its
// configuration, how it serves. C is its config struct, whose env, help and secret tags
// (see Setting) are what --help lists and `config` prints.
type Binary[C any] struct {
	Name  string // "stock": the binary is pgfleet-stock; logs and metrics say stock
	About string // what the binary is: the first paragraph of --help
	// Load reads the configuration from env as Run does, checks included; nil: Read.
	Load func(ctx context.Context, env envconfig.Lookuper) (C, error)
	Run  RunFunc
	// Migrations are the binary's schema migrations, for `migrate`; none (the gateway): the
	// binary has no `migrate`.
	Migrations migrate.Set
	// Healthz: `healthcheck` GETs /healthz on METRICS_ADDR (the gateway) rather than asking
	// gRPC health on GRPC_ADDR.
	Healthz bool
}

// Read reads cfg (a pointer to a config struct) from env with go-envconfig, as Load does,
// without logging it.
func Read(ctx context.Context, env envconfig.Lookuper, cfg any) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: env}); err != nil {
		// go-envconfig names the field ("App: DB: MaxConns: strconv.ParseInt: ..."); the
		// operator set a variable.
		list, _ := Settings(cfg)
		for _, s := range list {
			if msg, ok := strings.CutPrefix(err.Error(), s.path+": "); ok {
				return fmt.Errorf("read config: %w", &settingError{name: s.Name, msg: msg, err: err})
			}
		}
		return fmt.Errorf("read config: %w", err)
	}
	return nil
}

// settingError is go-envconfig's error about a field, told by the variable's name.
type settingError struct {
	name, msg string
	err       error
}

func (e *settingError) Error() string { return e.name + ": " + e.msg }
func (e *settingError) Unwrap() error { return e.err }

// processSettings are read by Main itself, before any config struct: the log level, and the
// OpenTelemetry variables that pkg/telemetry and the OTel SDK read (listed here so --help shows
// them; the SDK reads the rest of OTEL_EXPORTER_OTLP_* and OTEL_BSP_* as its spec says).
type processSettings struct {
	LogLevel      string `env:"LOG_LEVEL, default=info" help:"log level: debug (adds a line per successful call), info, warn or error"`
	OTLPEndpoint  string `env:"OTEL_EXPORTER_OTLP_ENDPOINT" help:"OTLP/gRPC collector for traces, e.g. http://otel-collector:4317 (https:// for TLS); empty: tracing off"`
	OTLPTraces    string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" help:"the same for traces only; wins over OTEL_EXPORTER_OTLP_ENDPOINT"`
	Sampler       string `env:"OTEL_TRACES_SAMPLER, default=parentbased_always_on" help:"which calls are traced, e.g. parentbased_traceidratio (follows the caller's traceparent, else samples a ratio)"`
	SamplerArg    string `env:"OTEL_TRACES_SAMPLER_ARG" help:"the sampler's argument, e.g. 0.01 for 1% with a traceidratio sampler"`
	ServiceName   string `env:"OTEL_SERVICE_NAME" help:"service.name of the spans; empty: pgfleet-<service>"`
	TracesOff     bool   `env:"OTEL_SDK_DISABLED, default=false" help:"true: tracing off even with an endpoint (so is OTEL_TRACES_EXPORTER=none)"`
	TraceExporter string `env:"OTEL_TRACES_EXPORTER, default=otlp" help:"none: tracing off; otlp (the only other value pgfleet takes) exports over OTLP/gRPC"`
}

// command runs the subcommand named by args (os.Args[1:], not empty) and returns the exit
// code; Main serves when there are no arguments.
func (b Binary[C]) command(ctx context.Context, args []string, env envconfig.Lookuper, stdout, stderr io.Writer) int {
	c := cli[C]{Binary: b, env: env, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		c.help(stdout)
		return exitOK
	case "--version", "-version":
		fmt.Fprintln(stdout, c.bin(), buildinfo.Get())
		return exitOK
	case "config":
		return c.config(ctx, args[1:])
	case "healthcheck":
		return c.healthcheck(ctx, args[1:])
	case "migrate":
		if b.Migrations.FS != nil {
			return c.migrate(ctx, args[1:])
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", c.bin(), args[0])
	c.usage(stderr)
	return exitUsage
}

type cli[C any] struct {
	Binary[C]
	env            envconfig.Lookuper
	stdout, stderr io.Writer
}

func (c cli[C]) bin() string { return "pgfleet-" + c.Name }

func (c cli[C]) usage(w io.Writer) {
	bin := c.bin()
	fmt.Fprintf(w, "Usage:\n")
	fmt.Fprintf(w, "  %s\n\tserve, configured by the environment (see Settings); SIGTERM drains and stops\n", bin)
	fmt.Fprintf(w, "  %s --help | -h | help\n\tthis text\n", bin)
	fmt.Fprintf(w, "  %s --version\n\tthe build: version (revision) Go version\n", bin)
	fmt.Fprintf(w, "  %s config\n\tthe settings as JSON, read as serving reads them, secrets hidden; exit 2 when invalid\n", bin)
	if c.Healthz {
		fmt.Fprintf(w, "  %s healthcheck [--addr ADDR] [--timeout D]\n\tGET /healthz of the running gateway (METRICS_ADDR); exit 0 on 200, 1 otherwise\n", bin)
	} else {
		fmt.Fprintf(w, "  %s healthcheck [--addr ADDR] [--service NAME] [--timeout D]\n"+
			"\tgRPC health of the running server (HEALTH_ADDR, else GRPC_ADDR, over TLS when TLS_CERT_FILE is set);\n"+
			"\texit 0 when SERVING, 1 otherwise\n", bin)
	}
	if c.Migrations.FS != nil {
		fmt.Fprintf(w, "  %s migrate status [--json]\n\tschema %q in DATABASE_URL: applied, latest, pending, unknown; exit 0 when current, 3 otherwise\n",
			bin, c.Migrations.Schema)
		fmt.Fprintf(w, "  %s migrate up\n\tapply the pending migrations (serving does too, at start)\n", bin)
	}
}

// help writes what the binary is, its subcommands and every setting, from the config
// struct's tags.
func (c cli[C]) help(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\n", c.bin(), c.About)
	c.usage(w)
	var cfg C
	list, _ := Settings(&cfg) // a missing help tag fails the binary's tests, not its --help
	process, _ := Settings(&processSettings{})
	fmt.Fprintf(w, "\nSettings (environment variables):\n")
	for _, s := range append(list, process...) {
		switch {
		case s.Required:
			fmt.Fprintf(w, "  %s (required)\n", s.Name)
		case s.Default != "":
			fmt.Fprintf(w, "  %s (default %s)\n", s.Name, s.Default)
		default:
			fmt.Fprintf(w, "  %s\n", s.Name)
		}
		fmt.Fprintf(w, "\t%s\n", s.Help)
	}
}

// load reads the configuration as serving does; an invalid one is reported on stderr.
func (c cli[C]) load(ctx context.Context) ([]Setting, bool) {
	cfg, err := c.loadConfig(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.bin(), err)
		return nil, false
	}
	list, _ := Settings(&cfg)
	return list, true
}

// loadConfig reads the configuration with Load, else Read, then runs its Validate method if
// it has one: what serving would refuse is invalid here too.
func (c cli[C]) loadConfig(ctx context.Context) (C, error) {
	var cfg C
	var err error
	if c.Load != nil {
		cfg, err = c.Load(ctx, c.env)
	} else {
		err = Read(ctx, c.env, &cfg)
	}
	if err != nil {
		return cfg, err
	}
	if v, ok := any(cfg).(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return cfg, fmt.Errorf("invalid config: %w", err)
		}
	}
	return cfg, nil
}

// flags parses a subcommand's flags; false: the caller exits with code.
func (c cli[C]) flags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(c.stderr)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(c.stderr, "%s %s: unexpected argument %q\n", c.bin(), fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

func (c cli[C]) config(ctx context.Context, args []string) int {
	if code, ok := c.flags(flag.NewFlagSet("config", flag.ContinueOnError), args); !ok {
		return code
	}
	list, ok := c.load(ctx)
	if !ok {
		return exitUsage
	}
	// An object in the struct's order, which encoding/json's maps would sort away.
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, s := range list {
		v, err := json.Marshal(s.Masked())
		if err != nil {
			fmt.Fprintf(c.stderr, "%s config: %s: %v\n", c.bin(), s.Name, err)
			return exitFailed
		}
		sep := ","
		if i == len(list)-1 {
			sep = ""
		}
		fmt.Fprintf(&buf, "  %q: %s%s\n", s.Name, v, sep)
	}
	buf.WriteString("}\n")
	_, _ = c.stdout.Write(buf.Bytes())
	return exitOK
}

// healthcheck asks the running binary whether it serves: the command a container without a
// shell runs as its health check.
func (c cli[C]) healthcheck(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to check (default: from the configuration)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of the check")
	service := ""
	if !c.Healthz {
		fs.StringVar(&service, "service", "", `health service to ask: "" (the server), "liveness" or a gRPC service name`)
	}
	if code, ok := c.flags(fs, args); !ok {
		return code
	}
	list, ok := c.load(ctx)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var status string
	var err error
	if c.Healthz {
		status, err = checkHTTP(ctx, *addr, list)
	} else {
		status, err = checkGRPC(ctx, *addr, service, list)
	}
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "%s healthcheck: %v\n", c.bin(), err)
		return exitFailed
	case status != "SERVING":
		fmt.Fprintf(c.stderr, "%s healthcheck: %s\n", c.bin(), status)
		return exitFailed
	}
	fmt.Fprintln(c.stdout, status)
	return exitOK
}

// checkGRPC asks gRPC health at addr, else at HEALTH_ADDR (plaintext, for probes), else at
// GRPC_ADDR, over TLS when the server has a certificate. The certificate is pinned rather
// than verified: the check dials its own server, by an address its certificate does not name.
func checkGRPC(ctx context.Context, addr, service string, list []Setting) (string, error) {
	creds := insecure.NewCredentials()
	if addr == "" {
		addr = lookupString(list, "HEALTH_ADDR")
	}
	if addr == "" {
		addr = lookupString(list, "GRPC_ADDR")
		if certFile := lookupString(list, "TLS_CERT_FILE"); certFile != "" {
			pinned, err := pinnedTLS(certFile)
			if err != nil {
				return "", err
			}
			creds = credentials.NewTLS(pinned)
		}
	}
	target := dialAddr(addr)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", target, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "", fmt.Errorf("%s: %w", target, err)
	}
	return resp.GetStatus().String(), nil
}

// checkHTTP GETs /healthz at addr, else at METRICS_ADDR (the gateway's metrics listener,
// plaintext): 200 is SERVING, anything else names the answer.
func checkHTTP(ctx context.Context, addr string, list []Setting) (string, error) {
	if addr == "" {
		addr = lookupString(list, "METRICS_ADDR")
	}
	url := "http://" + dialAddr(addr) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body))), nil
	}
	return "SERVING", nil
}

// dialAddr turns a listen address into one to dial: ":50051" and "0.0.0.0:50051" listen on
// every interface, loopback among them.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// pinnedTLS accepts exactly the certificate in certFile, the server's own.
func pinnedTLS(certFile string) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("TLS_CERT_FILE %s: no PEM certificate", certFile)
	}
	own := block.Bytes
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // verified below: the peer must present our own certificate
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 || !bytes.Equal(rawCerts[0], own) {
				return errors.New("the server's certificate is not TLS_CERT_FILE's")
			}
			return nil
		},
	}, nil
}

// migrate runs `migrate status [--json]` or `migrate up` against DATABASE_URL.
func (c cli[C]) migrate(ctx context.Context, args []string) int {
	if len(args) == 0 || (args[0] != "status" && args[0] != "up") {
		fmt.Fprintf(c.stderr, "%s migrate: want status or up\n\n", c.bin())
		c.usage(c.stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("migrate "+args[0], flag.ContinueOnError)
	asJSON := false
	if args[0] == "status" {
		fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
	}
	if code, ok := c.flags(fs, args[1:]); !ok {
		return code
	}
	list, ok := c.load(ctx)
	if !ok {
		return exitUsage
	}
	// A pool of its own: two connections are enough for goose and its advisory lock.
	pool, err := pgpool.New(ctx, pgpool.Config{URL: lookupString(list, "DATABASE_URL"), MaxConns: 2})
	if err != nil {
		fmt.Fprintf(c.stderr, "%s migrate: %v\n", c.bin(), err)
		return exitFailed
	}
	defer pool.Close()
	if args[0] == "up" {
		if err := migrate.Up(ctx, pool, c.Migrations); err != nil {
			fmt.Fprintf(c.stderr, "%s migrate up: %v\n", c.bin(), err)
			return exitFailed
		}
	}
	v, err := migrate.Status(ctx, pool, c.Migrations)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s migrate status: %v\n", c.bin(), err)
		return exitFailed
	}
	if asJSON {
		out, _ := json.MarshalIndent(versionJSON{Schema: v.Schema, Applied: v.Applied, Latest: v.Latest,
			Pending: nonNil(v.Pending), Unknown: nonNil(v.Unknown), Current: v.Current()}, "", "  ")
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		fmt.Fprintf(c.stdout, "schema   %s\napplied  %d\nlatest   %d\npending  %s\nunknown  %s\n",
			v.Schema, v.Applied, v.Latest, versions(v.Pending), versions(v.Unknown))
	}
	if !v.Current() {
		return exitPending
	}
	return exitOK
}

// versionJSON is `migrate status --json`.
type versionJSON struct {
	Schema  string  `json:"schema"`
	Applied int64   `json:"applied"`
	Latest  int64   `json:"latest"`
	Pending []int64 `json:"pending"`
	Unknown []int64 `json:"unknown"`
	Current bool    `json:"current"`
}

func nonNil(v []int64) []int64 {
	if v == nil {
		return []int64{}
	}
	return v
}

func versions(v []int64) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}
