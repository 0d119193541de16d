package deploy

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// modulePrefix is the import path prefix of the workspace's modules; the rest of an import
// path is its directory under the repository root.
const modulePrefix = "github.com/pgfleet/pgfleet/"

// envVar is one environment variable a binary reads, as its go-envconfig struct tag says.
type envVar struct {
	Name     string
	Type     string // the field's Go type, e.g. "time.Duration", "[]string"
	Default  string
	Required bool
	Where    string // file:line of the field
}

// codeEnv is every variable one binary reads, by name.
type codeEnv map[string]envVar

// binaryEnv returns the environment services/<name> reads: every `env:"..."` tag reachable
// from the struct types its package main declares, following field types into the
// workspace's packages and applying `prefix=` on the way down, as go-envconfig does; and
// every os.Getenv("NAME") / os.LookupEnv("NAME") in the workspace packages it imports
// (LOG_LEVEL, read by app.Main, is one).
// Reading the sources (rather than a list kept here) keeps the manifests' check in step with
// the code: a new setting is allowed the moment a struct declares it, a removed one fails.
func binaryEnv(t *testing.T, name string) codeEnv {
	t.Helper()
	envCache.Lock()
	defer envCache.Unlock()
	if env, ok := envCache.m[name]; ok {
		return env
	}
	main, err := loadPackage(filepath.Join(repoRoot, "services", name))
	if err != nil {
		t.Fatal(err)
	}
	env := codeEnv{}
	w := &envWalker{env: env, seen: map[string]bool{}}
	for _, ts := range main.types {
		if _, ok := ts.spec.Type.(*ast.StructType); ok {
			if err := w.walkStruct(main, ts.spec.Name.Name, ""); err != nil {
				t.Fatalf("services/%s: %v", name, err)
			}
		}
	}
	if len(env) == 0 {
		t.Fatalf("services/%s: no env tags found: has its config moved?", name)
	}
	seen := map[string]bool{main.dir: true}
	for queue := []*goPackage{main}; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		for _, g := range p.getenv {
			if _, ok := env[g.Name]; !ok {
				env[g.Name] = g
			}
		}
		for _, path := range p.imports {
			if strings.HasPrefix(path, pgconnPrefix) {
				for _, n := range pgconnEnv {
					if _, ok := env[n]; !ok {
						env[n] = envVar{Name: n, Type: "string", Where: p.dir + " imports " + path + " (libpq's variables)"}
					}
				}
			}
			dir := filepath.Join(repoRoot, filepath.FromSlash(strings.TrimPrefix(path, modulePrefix)))
			if !strings.HasPrefix(path, modulePrefix) || seen[dir] {
				continue
			}
			seen[dir] = true
			ip, err := loadPackage(dir)
			if err != nil {
				t.Fatalf("services/%s imports %s: %v", name, path, err)
			}
			queue = append(queue, ip)
		}
	}
	envCache.m[name] = env
	return env
}

// pgconnPrefix is pgx's import path: pgconn.ParseConfig, under every pgx connection, takes what
// a URL leaves out from libpq's environment variables. pgconnEnv are the ones the manifests
// may set: PGPASSWORD, so a DATABASE_URL need not carry the password.
const pgconnPrefix = "github.com/jackc/pgx/v5"

var pgconnEnv = []string{"PGPASSWORD"}

var envCache = struct {
	sync.Mutex
	m map[string]codeEnv
}{m: map[string]codeEnv{}}

type typeSpec struct {
	spec *ast.TypeSpec
	file *ast.File
}

// goPackage is one directory's non-test Go files.
type goPackage struct {
	dir     string
	fset    *token.FileSet
	types   map[string]typeSpec
	consts  map[string]ast.Expr // package-level constants with a value
	imports []string
	getenv  []envVar // os.Getenv / os.LookupEnv of a string literal
}

var pkgCache = struct {
	sync.Mutex
	m map[string]*goPackage
}{m: map[string]*goPackage{}}

func loadPackage(dir string) (*goPackage, error) {
	pkgCache.Lock()
	defer pkgCache.Unlock()
	if p, ok := pkgCache.m[dir]; ok {
		return p, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	p := &goPackage{dir: dir, fset: token.NewFileSet(), types: map[string]typeSpec{}, consts: map[string]ast.Expr{}}
	parsed := 0
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(p.fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		parsed++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			p.imports = append(p.imports, path)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || importPath(f, pkg.Name) != "os" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				p.getenv = append(p.getenv, envVar{Name: name, Type: "string", Where: p.fset.Position(call.Pos()).String()})
			}
			return true
		})
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					p.types[s.Name.Name] = typeSpec{spec: s, file: f}
				case *ast.ValueSpec:
					if gd.Tok == token.CONST {
						for i, id := range s.Names {
							if i < len(s.Values) {
								p.consts[id.Name] = s.Values[i]
							}
						}
					}
				}
			}
		}
	}
	if parsed == 0 {
		return nil, fmt.Errorf("%s: no Go files", dir)
	}
	pkgCache.m[dir] = p
	return p, nil
}

type envWalker struct {
	env  codeEnv
	seen map[string]bool // dir.Type+prefix, against cycles
}

// walkStruct collects the env tags of struct type name in p, under prefix.
func (w *envWalker) walkStruct(p *goPackage, name, prefix string) error {
	key := p.dir + "." + name + "|" + prefix
	if w.seen[key] {
		return nil
	}
	w.seen[key] = true
	ts, ok := p.types[name]
	if !ok {
		return fmt.Errorf("type %s not found in %s", name, p.dir)
	}
	st, ok := ts.spec.Type.(*ast.StructType)
	if !ok {
		return nil
	}
	for _, f := range st.Fields.List {
		tag := ""
		if f.Tag != nil {
			raw, err := strconv.Unquote(f.Tag.Value)
			if err != nil {
				return err
			}
			tag = reflect.StructTag(raw).Get("env")
		}
		opts := parseEnvTag(tag)
		if opts.key != "" {
			v := envVar{Name: prefix + opts.key, Type: exprString(f.Type), Default: opts.def,
				Required: opts.required, Where: p.fset.Position(f.Pos()).String()}
			if old, dup := w.env[v.Name]; dup && old.Where != v.Where {
				return fmt.Errorf("%s read twice: %s and %s", v.Name, old.Where, v.Where)
			}
			w.env[v.Name] = v
			continue
		}
		// No key: go-envconfig descends into a struct, adding the tag's prefix.
		tp, tname, ok := resolveStruct(p, ts.file, f.Type)
		if !ok {
			continue
		}
		if err := w.walkStruct(tp, tname, prefix+opts.prefix); err != nil {
			return err
		}
	}
	return nil
}

// resolveStruct finds the declaration of a field's type when it is a struct of this package
// or of a workspace package (pointers too). Other types (time.Duration, ...) are leaves.
func resolveStruct(p *goPackage, file *ast.File, typ ast.Expr) (*goPackage, string, bool) {
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	switch x := typ.(type) {
	case *ast.Ident:
		if ts, ok := p.types[x.Name]; ok {
			_, isStruct := ts.spec.Type.(*ast.StructType)
			return p, x.Name, isStruct
		}
	case *ast.SelectorExpr:
		pkgIdent, ok := x.X.(*ast.Ident)
		if !ok {
			return nil, "", false
		}
		path := importPath(file, pkgIdent.Name)
		if !strings.HasPrefix(path, modulePrefix) {
			return nil, "", false
		}
		tp, err := loadPackage(filepath.Join(repoRoot, filepath.FromSlash(strings.TrimPrefix(path, modulePrefix))))
		if err != nil {
			return nil, "", false
		}
		if ts, ok := tp.types[x.Sel.Name]; ok {
			_, isStruct := ts.spec.Type.(*ast.StructType)
			return tp, x.Sel.Name, isStruct
		}
	}
	return nil, "", false
}

// importPath returns the path that name refers to in file's imports.
func importPath(file *ast.File, name string) string {
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		local := path[strings.LastIndex(path, "/")+1:]
		if strings.HasPrefix(local, "v") && strings.Trim(local[1:], "0123456789") == "" { // .../v2
			rest := strings.TrimSuffix(path, "/"+local)
			local = rest[strings.LastIndex(rest, "/")+1:]
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == name {
			return path
		}
	}
	return ""
}

type envTag struct {
	key, def, prefix string
	required         bool
}

// parseEnvTag reads go-envconfig's tag: `env:"KEY, required, default=x, prefix=P_"`. A
// default takes the rest of the tag, commas included, as go-envconfig does.
func parseEnvTag(tag string) envTag {
	var o envTag
	parts := strings.Split(tag, ",")
	o.key = strings.TrimSpace(parts[0])
	for i := 1; i < len(parts); i++ {
		p := strings.TrimSpace(parts[i])
		switch {
		case strings.HasPrefix(strings.ToLower(p), "default="):
			o.def = strings.Join(append([]string{p[len("default="):]}, parts[i+1:]...), ",")
			return o
		case strings.HasPrefix(strings.ToLower(p), "prefix="):
			o.prefix = p[len("prefix="):]
		case strings.EqualFold(p, "required"):
			o.required = true
		}
	}
	return o
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.ArrayType:
		return "[]" + exprString(x.Elt)
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.MapType:
		return "map[" + exprString(x.Key) + "]" + exprString(x.Value)
	}
	return fmt.Sprintf("%T", e)
}

// checkValue reports whether value parses as v's Go type would in go-envconfig.
func (v envVar) checkValue(value string) error {
	var err error
	switch v.Type {
	case "string", "[]string":
	case "time.Duration":
		_, err = time.ParseDuration(value)
	case "bool":
		_, err = strconv.ParseBool(value)
	case "int", "int64":
		_, err = strconv.ParseInt(value, 10, 64)
	case "int32":
		_, err = strconv.ParseInt(value, 10, 32)
	case "uint32":
		_, err = strconv.ParseUint(value, 10, 32)
	case "float64":
		_, err = strconv.ParseFloat(value, 64)
	default:
		return fmt.Errorf("%s (%s): no value check for type %s: add one to checkValue", v.Name, v.Where, v.Type)
	}
	if err != nil {
		return fmt.Errorf("%s=%q is not a %s: %v", v.Name, value, v.Type, err)
	}
	return nil
}

// durationConst evaluates a package-level constant like `5 * time.Second` in dir.
func durationConst(t *testing.T, dir, name string) time.Duration {
	t.Helper()
	p, err := loadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := p.consts[name]
	if !ok {
		t.Fatalf("%s: no constant %s: the manifests' shutdown budget reads it", dir, name)
	}
	units := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond,
		"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
	var eval func(ast.Expr) (constant.Value, bool)
	eval = func(e ast.Expr) (constant.Value, bool) {
		switch x := e.(type) {
		case *ast.BasicLit:
			if x.Kind == token.INT {
				return constant.MakeFromLiteral(x.Value, x.Kind, 0), true
			}
		case *ast.ParenExpr:
			return eval(x.X)
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "time" {
				if u, ok := units[x.Sel.Name]; ok {
					return constant.MakeInt64(int64(u)), true
				}
			}
		case *ast.BinaryExpr:
			a, okA := eval(x.X)
			b, okB := eval(x.Y)
			if okA && okB && (x.Op == token.MUL || x.Op == token.ADD) {
				return constant.BinaryOp(a, x.Op, b), true
			}
		}
		return nil, false
	}
	v, ok := eval(e)
	if !ok {
		t.Fatalf("%s: constant %s = %s: not a duration these tests can evaluate", dir, name, exprString(e))
	}
	d, _ := constant.Int64Val(v)
	return time.Duration(d)
}

func TestBinaryEnv_readsTheSources(t *testing.T) {
	t.Parallel()
	// Names every binary must read, and some it must not; a failure here means the source
	// walk broke (or the code moved a setting), not the manifests.
	tests := []struct {
		binary   string
		want     []string
		wantNot  []string
		required []string
		addrs    []string // listen addresses: each must default to ":<port>"
	}{
		{
			binary:   "stock",
			want:     []string{"DATABASE_URL", "DATABASE_READ_URL", "MAX_REPLICA_LAG", "REPLICA_WAIT", "PGPASSWORD", "DB_POOL_SIZE", "DB_RETRY_MAX_ATTEMPTS", "LOCK_WAIT_TIMEOUT", "PAGE_TOKEN_KEY", "DRAIN_TIMEOUT", "GRPC_ADDR", "METRICS_ADDR", "LOG_LEVEL"},
			wantNot:  []string{"STOCK_ADDR", "ADDR", "HTTP_ADDR"},
			required: []string{"DATABASE_URL"},
			addrs:    []string{"GRPC_ADDR", "METRICS_ADDR"},
		},
		{
			binary:   "portfolio",
			want:     []string{"DATABASE_URL", "STOCK_ADDR", "STOCK_TIMEOUT", "STOCK_BREAKER_WINDOW"},
			wantNot:  []string{"ADDR", "TIMEOUT", "PORTFOLIO_ADDR"},
			required: []string{"DATABASE_URL", "STOCK_ADDR"},
			addrs:    []string{"GRPC_ADDR", "METRICS_ADDR"},
		},
		{
			binary:   "interview",
			want:     []string{"DATABASE_URL", "EVALUATOR_URL", "EVALUATOR_BREAKER_WINDOW"},
			wantNot:  []string{"STOCK_ADDR"},
			required: []string{"DATABASE_URL"},
			addrs:    []string{"GRPC_ADDR", "METRICS_ADDR"},
		},
		{
			binary:   "gateway",
			want:     []string{"STOCK_ADDR", "PORTFOLIO_ADDR", "INTERVIEW_ADDR", "HTTP_ADDR", "CORS_ALLOWED_ORIGINS"},
			wantNot:  []string{"DATABASE_URL", "GRPC_ADDR"},
			required: []string{"STOCK_ADDR", "PORTFOLIO_ADDR", "INTERVIEW_ADDR"},
			addrs:    []string{"HTTP_ADDR", "METRICS_ADDR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.binary, func(t *testing.T) {
			t.Parallel()
			env := binaryEnv(t, tt.binary)
			for _, n := range tt.want {
				if _, ok := env[n]; !ok {
					t.Errorf("%s does not read %s", tt.binary, n)
				}
			}
			for _, n := range tt.wantNot {
				if v, ok := env[n]; ok {
					t.Errorf("%s reads %s (%s)", tt.binary, n, v.Where)
				}
			}
			for _, n := range tt.required {
				if !env[n].Required {
					t.Errorf("%s: %s is not required", tt.binary, n)
				}
			}
			for _, n := range tt.addrs {
				if _, err := addrPort(env[n].Default); err != nil {
					t.Errorf("%s: default of %s: %v", tt.binary, n, err)
				}
			}
		})
	}
}
