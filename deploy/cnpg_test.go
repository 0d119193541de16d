package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// CloudNativePG's API module is not importable here (the module proxy refuses it), and it
// would pull in the operator's dependencies (controller-runtime, the Prometheus operator's
// types) for one struct. So cnpgCluster copies the part of its Cluster type these manifests
// use, field for field and with the same JSON names, from cloudnative-pg's
// api/v1/cluster_types.go; decoding is strict, so a field outside this copy (a typo, or a
// field nobody copied yet) fails the test until it is copied here from upstream.
var cnpgClusterGVK = schema.GroupVersionKind{Group: "postgresql.cnpg.io", Version: "v1", Kind: "Cluster"}

type cnpgCluster struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       cnpgClusterSpec   `json:"spec"`
}

type cnpgClusterSpec struct {
	Description           string                       `json:"description,omitempty"`
	Instances             int                          `json:"instances"`
	ImageName             string                       `json:"imageName,omitempty"`
	PrimaryUpdateStrategy string                       `json:"primaryUpdateStrategy,omitempty"`
	Affinity              *cnpgAffinity                `json:"affinity,omitempty"`
	Storage               cnpgStorage                  `json:"storage,omitempty"`
	Resources             *corev1.ResourceRequirements `json:"resources,omitempty"`
	PostgreSQL            cnpgPostgres                 `json:"postgresql,omitempty"`
	Bootstrap             *cnpgBootstrap               `json:"bootstrap,omitempty"`
	Managed               *cnpgManaged                 `json:"managed,omitempty"`
}

type cnpgAffinity struct {
	EnablePodAntiAffinity *bool  `json:"enablePodAntiAffinity,omitempty"`
	TopologyKey           string `json:"topologyKey,omitempty"`
	PodAntiAffinityType   string `json:"podAntiAffinityType,omitempty"`
}

type cnpgStorage struct {
	StorageClass *string `json:"storageClass,omitempty"`
	Size         string  `json:"size,omitempty"`
}

type cnpgPostgres struct {
	Parameters  map[string]string `json:"parameters,omitempty"`
	Synchronous *cnpgSynchronous  `json:"synchronous,omitempty"`
	PgHBA       []string          `json:"pg_hba,omitempty"`
}

// cnpgSynchronous is upstream's SynchronousReplicaConfiguration.
type cnpgSynchronous struct {
	Method                     string   `json:"method"`
	Number                     int      `json:"number"`
	MaxStandbyNamesFromCluster *int     `json:"maxStandbyNamesFromCluster,omitempty"`
	StandbyNamesPre            []string `json:"standbyNamesPre,omitempty"`
	StandbyNamesPost           []string `json:"standbyNamesPost,omitempty"`
	DataDurability             string   `json:"dataDurability,omitempty"`
	FailoverQuorum             bool     `json:"failoverQuorum,omitempty"`
}

// syncClusters must acknowledge a commit only once a standby has it, so a failover loses no
// acknowledged write: portfolio's, where the money is (a trade or cash movement the API
// acknowledged must be in the promoted standby's ledger). The others replicate asynchronously
// on purpose: a failover may lose their last acknowledged commits (up to the standby's lag),
// which stock's writers re-send (UpsertStocks, IngestPrices and UpsertRecommendations are
// idempotent upserts) and which for interview (question-bank edits, practice sessions) is a
// last step its user redoes, never money;
// in exchange their commits skip the round trip to a standby, and with dataDurability
// required the loss of both standbys would stop their writes, which nothing there is worth.
var syncClusters = []string{"pgfleet-portfolio"}

type cnpgBootstrap struct {
	InitDB *cnpgInitDB `json:"initdb,omitempty"`
}

type cnpgInitDB struct {
	Database                   string        `json:"database,omitempty"`
	Owner                      string        `json:"owner,omitempty"`
	Secret                     *cnpgLocalRef `json:"secret,omitempty"`
	PostInitApplicationSQL     []string      `json:"postInitApplicationSQL,omitempty"`
	PostInitApplicationSQLRefs *cnpgSQLRefs  `json:"postInitApplicationSQLRefs,omitempty"`
}

type cnpgSQLRefs struct {
	SecretRefs    []cnpgKeyRef `json:"secretRefs,omitempty"`
	ConfigMapRefs []cnpgKeyRef `json:"configMapRefs,omitempty"`
}

type cnpgKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type cnpgLocalRef struct {
	Name string `json:"name"`
}

type cnpgManaged struct {
	Roles []cnpgRole `json:"roles,omitempty"`
}

type cnpgRole struct {
	Name            string        `json:"name"`
	Comment         string        `json:"comment,omitempty"`
	Ensure          string        `json:"ensure,omitempty"`
	PasswordSecret  *cnpgLocalRef `json:"passwordSecret,omitempty"`
	ConnectionLimit int64         `json:"connectionLimit,omitempty"`
	InRoles         []string      `json:"inRoles,omitempty"`
	Inherit         *bool         `json:"inherit,omitempty"`
	DisablePassword bool          `json:"disablePassword,omitempty"`
	Superuser       bool          `json:"superuser,omitempty"`
	CreateDB        bool          `json:"createdb,omitempty"`
	CreateRole      bool          `json:"createrole,omitempty"`
	Login           bool          `json:"login,omitempty"`
	Replication     bool          `json:"replication,omitempty"`
	BypassRLS       bool          `json:"bypassrls,omitempty"`
}

func (c *cnpgCluster) roles() []cnpgRole {
	if c.Spec.Managed == nil {
		return nil
	}
	return c.Spec.Managed.Roles
}

// maxConnections is PostgreSQL's max_connections (its default: 100).
func (c *cnpgCluster) maxConnections() (int64, error) {
	v, ok := c.Spec.PostgreSQL.Parameters["max_connections"]
	if !ok {
		return 100, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

// reservedConnections are kept for what is not a service: superuser_reserved_connections
// (3), the operator and its exporter, and a person with psql.
const reservedConnections = 3 + 10

// checkDatabases: each schema owner's role lives in exactly one Cluster, which creates its
// schema at bootstrap and gives it LOGIN and a password from a Secret; its DATABASE_URL names
// that role, that Cluster's read-write Service and database, and the same password; and the
// connections its replicas may open fit the role's and the Cluster's limits.
func checkDatabases(t *testing.T, m *manifests, c renderCase) {
	if len(m.clusters) == 0 {
		t.Fatalf("%s: no CloudNativePG Cluster", m.source)
	}
	for name, cl := range m.clusters {
		checkCluster(t, m, c, name, cl)
	}
	for _, svc := range dbServices {
		var owners []string
		for name, cl := range m.clusters {
			if slices.ContainsFunc(cl.roles(), func(r cnpgRole) bool { return r.Name == svc }) {
				owners = append(owners, name)
			}
		}
		if len(owners) != 1 {
			t.Errorf("role %s is managed by Clusters %v, want exactly one", svc, owners)
			continue
		}
		cl := m.clusters[owners[0]]
		role := cl.roles()[slices.IndexFunc(cl.roles(), func(r cnpgRole) bool { return r.Name == svc })]
		d := m.deployments[svc]
		if d == nil {
			continue // reported by checkFleet
		}
		ctr := &d.Spec.Template.Spec.Containers[0]
		env, _ := containerEnv(m, c.external, ctr)
		checkDatabaseEnv(t, svc, owners[0], cl, role, ctr, env)

		code := binaryEnv(t, svc)
		poolS, _ := setting(env, code, "DB_POOL_SIZE")
		pool, err := strconv.ParseInt(poolS, 10, 64)
		if err != nil {
			t.Errorf("%s: DB_POOL_SIZE %q: %v", svc, poolS, err)
			continue
		}
		h := m.hpas[svc]
		if h == nil {
			continue
		}
		// Beside its pool, each pod holds its outbox's own connections, and a stock pod the
		// ingestion leader lock's (leading or waiting for the lead).
		own := int64(outbox.Connections)
		if svc == "stock" {
			own += int64(intConst(t, filepath.Join(repoRoot, "services/stock/internal/ingest"), "Connections"))
		}
		peak := int64(h.Spec.MaxReplicas+surge(d, h.Spec.MaxReplicas)) * (pool + own)
		limit := role.ConnectionLimit
		if limit <= 0 { // unset or -1: no role limit, the server's is what counts
			limit, _ = cl.maxConnections()
			limit -= reservedConnections
		}
		if peak > limit {
			t.Errorf("%s: (HPA max %d + rollout surge %d) x (DB_POOL_SIZE %d + %d connections of its own) = %d connections, above role %s's limit %d in Cluster %s",
				svc, h.Spec.MaxReplicas, surge(d, h.Spec.MaxReplicas), pool, own, peak, svc, limit, owners[0])
		}
		// Each pod also keeps a pool per DATABASE_READ_URL entry, as large as its primary's
		// (pkg/replica). The -ro Service may send all of them to one standby, whose limits
		// are the role's and max_connections as on the primary (a hot standby needs
		// max_connections at least the primary's; CloudNativePG gives every instance the
		// same): with the one -ro entry of these overlays, the bound above holds for each
		// standby too.
	}
}

func checkCluster(t *testing.T, m *manifests, c renderCase, name string, cl *cnpgCluster) {
	s := &cl.Spec
	if s.Instances < 1 || c.ha && s.Instances < 3 {
		t.Errorf("Cluster %s: %d instances (ha %v: a primary and two standbys)", name, s.Instances, c.ha)
	}
	if major := pgMajor(s.ImageName); major != composePostgresMajor(t) {
		t.Errorf("Cluster %s: image %q, but compose.yaml runs PostgreSQL %s: keep one major version", name, s.ImageName, composePostgresMajor(t))
	}
	if q, err := resource.ParseQuantity(s.Storage.Size); err != nil || q.Sign() <= 0 {
		t.Errorf("Cluster %s: storage size %q", name, s.Storage.Size)
	}
	if !slices.Contains([]string{"", "unsupervised", "supervised"}, s.PrimaryUpdateStrategy) {
		t.Errorf("Cluster %s: primaryUpdateStrategy %q", name, s.PrimaryUpdateStrategy)
	}
	if s.Affinity != nil && !slices.Contains([]string{"", "preferred", "required"}, s.Affinity.PodAntiAffinityType) {
		t.Errorf("Cluster %s: podAntiAffinityType %q", name, s.Affinity.PodAntiAffinityType)
	}
	checkSynchronous(t, c, name, s)
	maxConns, err := cl.maxConnections()
	if err != nil {
		t.Errorf("Cluster %s: max_connections: %v", name, err)
	}
	if s.Bootstrap == nil || s.Bootstrap.InitDB == nil {
		t.Fatalf("Cluster %s: want bootstrap.initdb", name)
	}
	initdb := s.Bootstrap.InitDB
	if initdb.Database != "pgfleet" || initdb.Owner == "" || slices.Contains(dbServices, initdb.Owner) {
		t.Errorf("Cluster %s: initdb database %q owner %q: want database pgfleet owned by a role that is no service's", name, initdb.Database, initdb.Owner)
	}

	if initdb.PostInitApplicationSQLRefs == nil {
		t.Fatalf("Cluster %s: want the bootstrap SQL in initdb.postInitApplicationSQLRefs", name)
	}
	var sql strings.Builder
	for _, ref := range initdb.PostInitApplicationSQLRefs.ConfigMapRefs {
		cm, ok := m.configMaps[ref.Name]
		if !ok || cm.Data[ref.Key] == "" {
			t.Errorf("Cluster %s: bootstrap SQL ConfigMap %s key %s not in %s", name, ref.Name, ref.Key, m.source)
			continue
		}
		sql.WriteString(cm.Data[ref.Key] + "\n")
	}
	text := strings.Join(strings.Fields(sql.String()), " ")
	var schemas []string
	for _, mm := range regexp.MustCompile(`CREATE SCHEMA IF NOT EXISTS (\w+) AUTHORIZATION (\w+)`).FindAllStringSubmatch(text, -1) {
		if mm[1] != mm[2] {
			t.Errorf("Cluster %s: schema %s owned by %s: each service owns the schema of its name", name, mm[1], mm[2])
		}
		schemas = append(schemas, mm[1])
	}
	var roleNames []string
	var limits int64
	grant := localGrant(t)
	for _, r := range cl.roles() {
		roleNames = append(roleNames, r.Name)
		if !slices.Contains(dbServices, r.Name) {
			t.Errorf("Cluster %s: role %s is no service's", name, r.Name)
		}
		if !r.Login || r.Superuser || r.CreateDB || r.CreateRole || r.Replication || r.BypassRLS || len(r.InRoles) > 0 ||
			!slices.Contains([]string{"", "present"}, r.Ensure) {
			t.Errorf("Cluster %s: role %s: want a present plain login role, got %+v", name, r.Name, r)
		}
		if r.PasswordSecret == nil {
			t.Errorf("Cluster %s: role %s has no passwordSecret", name, r.Name)
		} else if sec, ok := m.secrets[r.PasswordSecret.Name]; ok {
			if sec.Type != corev1.SecretTypeBasicAuth || string(sec.Data["username"]) != r.Name || len(sec.Data["password"]) == 0 {
				t.Errorf("Cluster %s: role %s: Secret %s must be kubernetes.io/basic-auth with username %s and a password", name, r.Name, sec.Name, r.Name)
			}
			if sec.Labels["cnpg.io/reload"] != "true" {
				t.Errorf("Cluster %s: role %s: Secret %s lacks label cnpg.io/reload=true: a changed password would not reach the role", name, r.Name, sec.Name)
			}
		} else if !c.external || externalSecrets[r.PasswordSecret.Name] == nil {
			t.Errorf("Cluster %s: role %s: Secret %s is not in %s nor a documented external secret", name, r.Name, r.PasswordSecret.Name, m.source)
		}
		for _, stmt := range []string{
			"CREATE ROLE " + r.Name + " NOLOGIN",
			"GRANT " + grant + " ON DATABASE " + initdb.Database + " TO " + r.Name,
		} {
			if !strings.Contains(text, stmt) {
				t.Errorf("Cluster %s: bootstrap SQL lacks %q", name, stmt)
			}
		}
		if r.ConnectionLimit > 0 {
			limits += r.ConnectionLimit
		} else {
			t.Errorf("Cluster %s: role %s has no connectionLimit: one service could take every connection", name, r.Name)
		}
	}
	slices.Sort(schemas)
	slices.Sort(roleNames)
	if !slices.Equal(schemas, roleNames) {
		t.Errorf("Cluster %s: bootstrap SQL creates schemas %v, managed roles are %v", name, schemas, roleNames)
	}
	for _, stmt := range []string{"REVOKE CREATE ON SCHEMA public FROM PUBLIC", "REVOKE ALL ON DATABASE " + initdb.Database + " FROM PUBLIC"} {
		if !strings.Contains(text, stmt) {
			t.Errorf("Cluster %s: bootstrap SQL lacks %q (deploy/local/bootstrap.sql has it)", name, stmt)
		}
	}
	if limits+reservedConnections > maxConns {
		t.Errorf("Cluster %s: role connection limits add up to %d; with %d reserved that passes max_connections %d", name, limits, reservedConnections, maxConns)
	}
}

// localGrant is the database privilege list deploy/local/bootstrap.sql grants each role, so
// the CloudNativePG bootstrap grants the same as `make run`.
// checkSynchronous holds the clusters of syncClusters, where they have standbys (ha), to
// quorum synchronous replication that blocks rather than acknowledge a commit no standby has
// (dataDurability required), with a standby to spare so one standby's loss does not block.
func checkSynchronous(t *testing.T, c renderCase, name string, s *cnpgClusterSpec) {
	t.Helper()
	sync := s.PostgreSQL.Synchronous
	if !c.ha || !slices.Contains(syncClusters, name) {
		if sync != nil {
			t.Errorf("Cluster %s: synchronous replication set where it is not wanted (ha %v)", name, c.ha)
		}
		return
	}
	switch {
	case sync == nil:
		t.Errorf("Cluster %s: want postgresql.synchronous: an acknowledged trade must survive a failover", name)
	case sync.Method != "any" || sync.Number < 1 || sync.DataDurability != "required":
		t.Errorf("Cluster %s: synchronous = %+v; want method any, number >= 1, dataDurability required", name, *sync)
	case s.Instances-1 <= sync.Number:
		t.Errorf("Cluster %s: %d instances for %d synchronous standbys: losing one standby would block every commit", name, s.Instances, sync.Number)
	case s.PostgreSQL.Parameters["synchronous_commit"] != "" && s.PostgreSQL.Parameters["synchronous_commit"] != "on":
		t.Errorf("Cluster %s: synchronous_commit %q: want on (the default), which waits for the standby's flush", name, s.PostgreSQL.Parameters["synchronous_commit"])
	}
}

func localGrant(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("local", "bootstrap.sql"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`'GRANT ([A-Z, ]+) ON DATABASE`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/local/bootstrap.sql: no GRANT ... ON DATABASE: has it changed?")
	}
	return string(m[1])
}

// checkDatabaseEnv: DATABASE_URL is the service's role on its Cluster's read-write Service;
// DATABASE_READ_URL, where the Cluster has standbys, is the same role and database on its
// read-only Service (standbys only); both in plain sight (a ConfigMap), without a password,
// which pgx takes from PGPASSWORD, set from the Secret that gives the role its password.
func checkDatabaseEnv(t *testing.T, svc, cluster string, cl *cnpgCluster, role cnpgRole, ctr *corev1.Container, env map[string]envValue) {
	primary, ok := env["DATABASE_URL"]
	switch {
	case !ok:
		t.Errorf("%s: DATABASE_URL not set", svc)
	case !primary.known:
		t.Errorf("%s: DATABASE_URL from %s: want it in the render (a ConfigMap), so its host is checked here", svc, primary.from)
	default:
		checkDatabaseURL(t, svc, "DATABASE_URL", cluster+"-rw", cl, primary.value)
	}
	read, ok := env["DATABASE_READ_URL"]
	switch {
	case cl.Spec.Instances < 2:
		// -ro selects standbys only: with none, it has no endpoints, and every replica read
		// would first wait for a connection that cannot come.
		if ok && read.value != "" {
			t.Errorf("%s: DATABASE_READ_URL set, but Cluster %s has %d instance(s): no standby behind %s-ro", svc, cluster, cl.Spec.Instances, cluster)
		}
	case !ok || read.value == "" && read.known:
		t.Errorf("%s: Cluster %s has %d instances, but no DATABASE_READ_URL (its %s-ro Service): every read goes to the primary",
			svc, cluster, cl.Spec.Instances, cluster)
	case !read.known:
		t.Errorf("%s: DATABASE_READ_URL from %s: want it in the render (a ConfigMap), so its host is checked here", svc, read.from)
	default:
		checkDatabaseURL(t, svc, "DATABASE_READ_URL", cluster+"-ro", cl, read.value)
		if primary.known {
			p, errP := url.Parse(primary.value)
			r, errR := url.Parse(read.value)
			if errP == nil && errR == nil && (p.User.Username() != r.User.Username() || p.Path != r.Path || p.Query().Get("sslmode") != r.Query().Get("sslmode")) {
				t.Errorf("%s: DATABASE_READ_URL's user, database or sslmode differ from DATABASE_URL's", svc)
			}
		}
	}
	// The password: PGPASSWORD (pgconn reads libpq's variables) from the role's own Secret, the
	// one CloudNativePG sets the role's password from, so the two cannot drift apart.
	i := slices.IndexFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == "PGPASSWORD" })
	if role.PasswordSecret == nil {
		return // reported by checkCluster
	}
	if i < 0 || ctr.Env[i].ValueFrom == nil || ctr.Env[i].ValueFrom.SecretKeyRef == nil ||
		ctr.Env[i].ValueFrom.SecretKeyRef.Name != role.PasswordSecret.Name || ctr.Env[i].ValueFrom.SecretKeyRef.Key != "password" {
		t.Errorf("%s: want env PGPASSWORD from Secret %s key password (role %s's password in Cluster %s)", svc, role.PasswordSecret.Name, svc, cluster)
	}
}

// checkDatabaseURL: the service's role, on the given Service of its Cluster, in its database,
// over TLS, with no password in it (PGPASSWORD carries it).
func checkDatabaseURL(t *testing.T, svc, name, service string, cl *cnpgCluster, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s: %s does not parse: %v", svc, name, err)
		return
	}
	host, _, _ := strings.Cut(u.Hostname(), ".")
	_, hasPW := u.User.Password()
	switch {
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		t.Errorf("%s: %s scheme %q", svc, name, u.Scheme)
	case u.User.Username() != svc:
		t.Errorf("%s: %s user %q, want its own role %s", svc, name, u.User.Username(), svc)
	case hasPW:
		t.Errorf("%s: %s carries a password: leave it to PGPASSWORD (from the role's Secret), so the URL holds no secret", svc, name)
	case host != service:
		t.Errorf("%s: %s host %q, want %s", svc, name, u.Hostname(), service)
	case u.Port() != "" && u.Port() != "5432":
		t.Errorf("%s: %s port %s, want 5432", svc, name, u.Port())
	case strings.TrimPrefix(u.Path, "/") != cl.Spec.Bootstrap.InitDB.Database:
		t.Errorf("%s: %s database %q, want %q", svc, name, u.Path, cl.Spec.Bootstrap.InitDB.Database)
	case u.Query().Get("sslmode") == "" || u.Query().Get("sslmode") == "disable":
		t.Errorf("%s: %s sslmode %q: CloudNativePG serves TLS; use require or verify-full", svc, name, u.Query().Get("sslmode"))
	}
}

// pgMajor is the major version in a PostgreSQL image tag ("...postgresql:15.4" -> "15").
func pgMajor(image string) string {
	tag := image[strings.LastIndex(image, ":")+1:]
	major, _, _ := strings.Cut(tag, ".")
	major, _, _ = strings.Cut(major, "-")
	return major
}

// TestCNPG_readReplicas states issue 15's wiring on its own (TestFleet checks it among the
// rest): in prod each database service reads from its own Cluster's -ro Service (standbys
// only) as the same role and database it writes with on -rw; in dev, whose one instance has no
// standby, it has no read URL at all; only portfolio's Cluster is synchronous (syncClusters
// says why).
func TestCNPG_readReplicas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		dirs     []string
		clusters map[string]string // service -> its Cluster
		read     bool              // DATABASE_READ_URL on the Cluster's -ro
	}{
		{name: "prod", dirs: []string{"overlays/prod", "cnpg/prod"}, read: true,
			clusters: map[string]string{"stock": "pgfleet-stock", "portfolio": "pgfleet-portfolio", "interview": "pgfleet-interview"}},
		{name: "dev", dirs: []string{"overlays/dev"},
			clusters: map[string]string{"stock": "pgfleet-db", "portfolio": "pgfleet-db", "interview": "pgfleet-db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, tt.dirs[0])
			for _, d := range tt.dirs[1:] {
				m.merge(t, render(t, d))
			}
			for _, svc := range dbServices {
				d, ok := m.deployments[svc]
				if !ok {
					t.Fatalf("no Deployment %s", svc)
				}
				env, _ := containerEnv(m, true, &d.Spec.Template.Spec.Containers[0])
				cluster := tt.clusters[svc]
				rw, err := url.Parse(env["DATABASE_URL"].value)
				if err != nil || rw.Hostname() != cluster+"-rw" {
					t.Errorf("%s: DATABASE_URL host %q, want %s-rw (in the render, not in a Secret from outside)", svc, rw.Hostname(), cluster)
					rw = &url.URL{User: url.User(svc), Path: "/pgfleet"} // still check the read URL
				}
				ro, set := env["DATABASE_READ_URL"]
				if !tt.read {
					if set {
						t.Errorf("%s: DATABASE_READ_URL set in %s, whose Cluster %s has no standby", svc, tt.name, cluster)
					}
					continue
				}
				u, err := url.Parse(ro.value)
				switch {
				case !set:
					t.Errorf("%s: no DATABASE_READ_URL: every read goes to the primary", svc)
				case err != nil:
					t.Errorf("%s: DATABASE_READ_URL does not parse: %v", svc, err)
				case u.Hostname() != cluster+"-ro":
					t.Errorf("%s: DATABASE_READ_URL host %q, want %s-ro", svc, u.Hostname(), cluster)
				case u.User.Username() != rw.User.Username() || u.Path != rw.Path || u.Port() != rw.Port():
					t.Errorf("%s: DATABASE_READ_URL %s@%s%s, DATABASE_URL %s@%s%s: want the same role, port and database",
						svc, u.User.Username(), u.Host, u.Path, rw.User.Username(), rw.Host, rw.Path)
				}
			}
			for name, cl := range m.clusters {
				if sync := cl.Spec.PostgreSQL.Synchronous != nil; sync != (tt.read && slices.Contains(syncClusters, name)) {
					t.Errorf("Cluster %s: synchronous %v in %s, want it only on %v in prod", name, sync, tt.name, syncClusters)
				}
			}
		})
	}
}
