package deploy

import (
	"bufio"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerStage is one FROM ... [AS name] of the Dockerfile and its instructions.
type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

type dockerInstr struct {
	cmd  string // upper case: RUN, COPY, ...
	args string
}

// dockerfile parses deploy/docker/Dockerfile: global ARGs (before the first FROM) and stages.
func dockerfile(t *testing.T) (globals map[string]string, stages []dockerStage) {
	t.Helper()
	b, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	globals = map[string]string{}
	var logical []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue // comments, also inside continued instructions, as Docker reads them
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		switch {
		case cmd == "FROM":
			f := strings.Fields(args)
			st := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && cmd == "ARG":
			k, v, _ := strings.Cut(args, "=")
			globals[k] = v
		case len(stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", cmd)
		default:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, dockerInstr{cmd, args})
		}
	}
	return globals, stages
}

func stageNamed(stages []dockerStage, name string) *dockerStage {
	for i := range stages {
		if stages[i].name == name {
			return &stages[i]
		}
	}
	return nil
}

// dockerUser is the numeric user the images run as.
func dockerUser(t *testing.T) int64 {
	t.Helper()
	_, stages := dockerfile(t)
	if rt := stageNamed(stages, "runtime"); rt != nil {
		for _, in := range rt.instrs {
			if in.cmd == "USER" {
				uid, _, _ := strings.Cut(in.args, ":")
				if n, err := strconv.ParseInt(uid, 10, 64); err == nil {
					return n
				}
			}
		}
	}
	t.Fatal("Dockerfile: the runtime stage sets no numeric USER")
	return 0
}

// TestDockerfile: one build stage compiles ./services/$SERVICE statically from the workspace;
// a distroless non-root runtime; a final stage per binary that EXPOSEs the ports its code
// listens on by default; SERVICE picks the stage.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	globals, stages := dockerfile(t)
	if _, ok := globals["SERVICE"]; !ok {
		t.Errorf("no global ARG SERVICE")
	}
	if goVersion, work := globals["GO_VERSION"], goWorkVersion(t); !versionAtLeast(goVersion, work) {
		t.Errorf("ARG GO_VERSION=%s is older than go.work's go %s", goVersion, work)
	}

	build := stageNamed(stages, "build")
	if build == nil || build.from != "golang:${GO_VERSION}" {
		t.Fatalf("want a stage `FROM golang:${GO_VERSION} AS build`")
	}
	var run string
	for _, in := range build.instrs {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			run = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `"./services/${SERVICE}"`, "-o /out/pgfleet", "--mount=type=cache,target=/go/pkg/mod"} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage's go build lacks %s: %q", want, run)
		}
	}
	if !slices.Contains(build.instrs, dockerInstr{"ARG", "SERVICE"}) || !slices.Contains(build.instrs, dockerInstr{"COPY", ". ."}) {
		t.Errorf("build stage must take ARG SERVICE and COPY the workspace (. .)")
	}

	rt := stageNamed(stages, "runtime")
	if rt == nil || !strings.HasPrefix(rt.from, "gcr.io/distroless/static") || !strings.HasSuffix(rt.from, ":nonroot") {
		t.Fatalf("want a runtime stage FROM gcr.io/distroless/static...:nonroot")
	}
	for _, want := range []dockerInstr{{"COPY", "--from=build /out/pgfleet /pgfleet"}, {"ENTRYPOINT", `["/pgfleet"]`}} {
		if !slices.Contains(rt.instrs, want) {
			t.Errorf("runtime stage lacks %s %s", want.cmd, want.args)
		}
	}
	if dockerUser(t) == 0 {
		t.Errorf("runtime stage runs as root")
	}

	binaries := serviceDirs(t)
	if !slices.Equal(binaries, slices.Sorted(slices.Values(components))) {
		t.Errorf("services/ holds %v, the deployment knows %v", binaries, components)
	}
	for _, name := range binaries {
		st := stageNamed(stages, name)
		if st == nil || st.from != "runtime" {
			t.Errorf("no stage `FROM runtime AS %s`", name)
			continue
		}
		var exposed []int32
		for _, in := range st.instrs {
			if in.cmd != "EXPOSE" {
				t.Errorf("stage %s: %s: the per-service stages only EXPOSE", name, in.cmd)
			}
			for _, f := range strings.Fields(in.args) {
				p, err := strconv.ParseInt(f, 10, 32)
				if err != nil {
					t.Errorf("stage %s: EXPOSE %s", name, f)
				}
				exposed = append(exposed, int32(p))
			}
		}
		ports, err := listenPorts(nil, binaryEnv(t, name))
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(func(yield func(int32) bool) {
			for _, p := range ports {
				yield(p)
			}
		})
		if slices.Sort(exposed); !slices.Equal(exposed, want) {
			t.Errorf("stage %s EXPOSEs %v; services/%s listens on %v by default", name, exposed, name, want)
		}
	}
	if last := stages[len(stages)-1]; last.from != "${SERVICE}" || last.name != "" {
		t.Errorf("the last stage must be `FROM ${SERVICE}`, got FROM %s", last.from)
	}
}

// serviceDirs lists services/*/ that hold a main package.
func serviceDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot, "services"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(repoRoot, "services", e.Name(), "main.go"))
		if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b) {
			names = append(names, e.Name())
		}
	}
	return names
}

// goWork returns go.work's go version and used directories.
func goWork(t *testing.T) (version string, uses []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	inUse := false
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(strings.SplitN(l, "//", 2)[0])
		switch {
		case strings.HasPrefix(l, "go "):
			version = strings.TrimSpace(l[3:])
		case l == "use (":
			inUse = true
		case inUse && l == ")":
			inUse = false
		case inUse && l != "":
			uses = append(uses, filepath.Clean(l))
		case strings.HasPrefix(l, "use "):
			uses = append(uses, filepath.Clean(strings.TrimSpace(l[4:])))
		}
	}
	return version, uses
}

func goWorkVersion(t *testing.T) string { v, _ := goWork(t); return v }

// versionAtLeast compares dotted versions numerically ("1.26.8" >= "1.26.0").
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// TestDockerignore: the build context keeps what `go build ./services/$SERVICE` needs in
// workspace mode (go.work, every used module's go.mod and go.sum, all Go sources of gen, pkg
// and services) and leaves out the repository's history and local state.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(p))
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	_, uses := goWork(t)
	need := []string{"go.work", "go.work.sum"}
	for _, u := range uses {
		for _, f := range []string{"go.mod", "go.sum"} {
			if _, err := os.Stat(filepath.Join(repoRoot, u, f)); err == nil {
				need = append(need, filepath.Join(u, f))
			}
		}
	}
	for _, dir := range []string{"gen", "pkg", "services"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
				need = append(need, strings.TrimPrefix(p, repoRoot+string(filepath.Separator)))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range need {
		if excluded(p) {
			t.Errorf(".dockerignore leaves out %s, which the workspace build needs", p)
		}
	}
	for _, p := range []string{".git/HEAD", ".tmp/bin/buf", "deploy/local/data/PG_VERSION", "deploy/base/kustomization.yaml"} {
		if !excluded(p) {
			t.Errorf(".dockerignore sends %s to the builder", p)
		}
	}
}

// compose is the part of the Compose specification deploy/compose.yaml uses; decoding is
// strict, so a misspelt key fails here rather than being ignored by docker compose.
type compose struct {
	Name     string                     `json:"name,omitempty"`
	Services map[string]composeService  `json:"services"`
	Volumes  map[string]*composeVolume  `json:"volumes,omitempty"`
	Networks map[string]*composeNetwork `json:"networks,omitempty"`
}

type composeService struct {
	Image           string                       `json:"image,omitempty"`
	Build           *composeBuild                `json:"build,omitempty"`
	Environment     map[string]string            `json:"environment,omitempty"`
	Ports           []string                     `json:"ports,omitempty"`
	Volumes         []string                     `json:"volumes,omitempty"`
	DependsOn       map[string]composeDependency `json:"depends_on,omitempty"`
	Healthcheck     *composeHealthcheck          `json:"healthcheck,omitempty"`
	Restart         string                       `json:"restart,omitempty"`
	ReadOnly        bool                         `json:"read_only,omitempty"`
	CapDrop         []string                     `json:"cap_drop,omitempty"`
	SecurityOpt     []string                     `json:"security_opt,omitempty"`
	StopGracePeriod string                       `json:"stop_grace_period,omitempty"`
	User            string                       `json:"user,omitempty"`
}

type composeBuild struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
}

type composeDependency struct {
	Condition string `json:"condition"`
	Restart   bool   `json:"restart,omitempty"`
	Required  *bool  `json:"required,omitempty"`
}

type composeHealthcheck struct {
	Test        []string `json:"test"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod string   `json:"start_period,omitempty"`
}

type composeVolume struct {
	Driver   string `json:"driver,omitempty"`
	External bool   `json:"external,omitempty"`
	Name     string `json:"name,omitempty"`
}

type composeNetwork struct {
	Driver string `json:"driver,omitempty"`
}

func loadCompose(t *testing.T) *compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCompose(b)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func decodeCompose(b []byte) (*compose, error) {
	var c compose
	if err := decodeStrictJSON(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// interpolate resolves compose's ${VAR:-default} and ${VAR} to their defaults ("" without).
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{(\w+)(?::?-([^}]*))?\}`).ReplaceAllString(s, "$2")
}

func composePostgresMajor(t *testing.T) string {
	t.Helper()
	img := loadCompose(t).Services["postgres"].Image
	if !strings.HasPrefix(img, "postgres:") {
		t.Fatalf("compose.yaml: postgres image %q: want postgres:<major>", img)
	}
	return pgMajor(img)
}

// TestCompose checks compose.yaml against the code and the Dockerfile: each binary built
// from the Dockerfile's stage of its name, its env names read by the code with values that
// parse, its ports those the code listens on, peers reached by service name on their ports,
// each service on its own role and schema, and a stop grace period that outlasts the drain.
func TestCompose(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	pg, ok := c.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	for _, v := range pg.Volumes {
		host, target, _ := strings.Cut(v, ":")
		if !strings.HasPrefix(host, ".") {
			continue // a named volume
		}
		fi, err := os.Stat(host)
		if err != nil {
			t.Errorf("postgres mounts %s: %v", host, err)
		} else if strings.HasPrefix(target, "/docker-entrypoint-initdb.d/") && strings.HasSuffix(host, ".sh") && fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", host)
		}
	}
	if pg.Healthcheck == nil {
		t.Errorf("postgres has no healthcheck: the services wait for it")
	}
	for _, name := range components {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, ok := c.Services[name]
			if !ok {
				t.Fatalf("no service %s", name)
			}
			if s.Build == nil || filepath.Clean(s.Build.Context) != repoRoot || s.Build.Dockerfile != "deploy/docker/Dockerfile" || s.Build.Args["SERVICE"] != name {
				t.Errorf("build %+v: want context .., dockerfile deploy/docker/Dockerfile, SERVICE=%s", s.Build, name)
			}
			if s.Image != "pgfleet/"+name {
				t.Errorf("image %q, want pgfleet/%s", s.Image, name)
			}
			// The image has no shell: the binary checks itself (pkg/app's healthcheck).
			if h := s.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD", "/pgfleet", "healthcheck"}) {
				t.Errorf("healthcheck %+v, want test [CMD /pgfleet healthcheck]", h)
			}
			code := binaryEnv(t, name)
			env := map[string]envValue{}
			for k, v := range s.Environment {
				env[k] = envValue{interpolate(v), true, "compose.yaml"}
				cv, reads := code[k]
				if !reads {
					t.Errorf("%s: services/%s does not read it", k, name)
				} else if err := cv.checkValue(interpolate(v)); err != nil {
					t.Error(err)
				}
			}
			for n, cv := range code {
				if _, ok := env[n]; cv.Required && !ok {
					t.Errorf("%s is required (%s) but not set", n, cv.Where)
				}
			}
			if v, ok := env["JWT_SECRET"]; ok && len(v.value) < intConst(t, filepath.Join(repoRoot, "pkg/auth"), "minSecretLen") {
				t.Errorf("JWT_SECRET's default %q is shorter than pkg/auth accepts", v.value)
			}
			ports, err := listenPorts(env, code)
			if err != nil {
				t.Fatal(err)
			}
			var published, want []int32
			for _, p := range s.Ports {
				container := p[strings.LastIndex(p, ":")+1:]
				n, err := strconv.ParseInt(container, 10, 32)
				if err != nil {
					t.Errorf("port %q", p)
				}
				published = append(published, int32(n))
			}
			for _, p := range ports {
				want = append(want, p)
			}
			slices.Sort(published)
			slices.Sort(want)
			if !slices.Equal(published, want) {
				t.Errorf("publishes container ports %v, services/%s listens on %v", published, name, want)
			}
			for _, peer := range dbServices {
				addr, ok := env[strings.ToUpper(peer)+"_ADDR"]
				if !ok {
					continue
				}
				pp, _ := listenPorts(nil, binaryEnv(t, peer))
				if want := "dns:///" + peer + ":" + strconv.Itoa(int(pp["grpc"])); addr.value != want {
					t.Errorf("%s_ADDR=%q, want %q (every replica of compose service %s, round_robin)", strings.ToUpper(peer), addr.value, want, peer)
				}
				if _, ok := s.DependsOn[peer]; !ok {
					t.Errorf("calls %s but does not depend on it", peer)
				}
			}
			if slices.Contains(dbServices, name) {
				u, err := url.Parse(env["DATABASE_URL"].value)
				pw, _ := u.User.Password()
				wantPW := interpolate(pg.Environment[strings.ToUpper(name)+"_DB_PASSWORD"])
				if err != nil || u.User.Username() != name || u.Hostname() != "postgres" || u.Path != "/pgfleet" || pw != wantPW {
					t.Errorf("DATABASE_URL %q: want role %s (password as postgres' %s_DB_PASSWORD) on postgres, database pgfleet", s.Environment["DATABASE_URL"], name, strings.ToUpper(name))
				}
				if s.DependsOn["postgres"].Condition != "service_healthy" {
					t.Errorf("want depends_on postgres: service_healthy")
				}
			}
			for dep, d := range s.DependsOn {
				if _, ok := c.Services[dep]; !ok || !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition) ||
					d.Condition == "service_healthy" && c.Services[dep].Healthcheck == nil {
					t.Errorf("depends_on %s: %+v", dep, d)
				}
			}
			drainS, _ := setting(env, code, "DRAIN_TIMEOUT")
			drain, _ := time.ParseDuration(drainS)
			metricsDir := filepath.Join(repoRoot, "pkg/server")
			if name == "gateway" {
				metricsDir = filepath.Join(repoRoot, "services/gateway")
			}
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if need := drain + durationConst(t, metricsDir, "metricsShutdown"); err != nil || grace <= need {
				t.Errorf("stop_grace_period %q must exceed DRAIN_TIMEOUT + metrics shutdown (%v)", s.StopGracePeriod, need)
			}
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("want read_only and cap_drop [ALL]")
			}
		})
	}
}
