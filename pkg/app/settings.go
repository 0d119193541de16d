package app

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of a binary's configuration, as its config struct
// declares it: the go-envconfig `env:"NAME, default=..."` tag (under the prefixes of the
// structs around it), a `help:"..."` tag saying what it means, and, for secrets, a
// `secret:"true"` tag (the whole value) or `secret:"password"` (a URL or connection string
// whose password alone is secret).
type Setting struct {
	Name     string // e.g. DB_POOL_SIZE, STOCK_TIMEOUT
	Default  string // empty: none
	Required bool
	Help     string
	Secret   string        // "", "true" or "password"
	value    reflect.Value // the field, in the struct walked
	path     string        // its field names as go-envconfig's errors give them: "App: DB: MaxConns"
}

// envDefaulter is a config struct whose nested settings' defaults depend on where it is
// embedded, so no default= tag can hold them (breaker.Config's MinRequests and OpenTimeout):
// it names them relative to its own prefix.
type envDefaulter interface{ EnvDefaults() map[string]string }

// Settings lists the settings of cfg (a config struct or a pointer to one) in declaration
// order, walking nested structs as go-envconfig does. The error names the settings that
// lack a help tag; the list is complete either way.
func Settings(cfg any) ([]Setting, error) {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("settings of %T: not a struct", cfg)
	}
	var list []Setting
	walk(v, "", "", false, nil, &list)
	var missing []string
	for _, s := range list {
		if s.Help == "" {
			missing = append(missing, s.Name)
		}
	}
	if len(missing) > 0 {
		return list, fmt.Errorf("settings without a help tag: %s", strings.Join(missing, ", "))
	}
	return list, nil
}

func walk(v reflect.Value, path, prefix string, required bool, defaults map[string]string, list *[]Setting) {
	if d, ok := v.Interface().(envDefaulter); ok {
		defaults = make(map[string]string)
		for k, val := range d.EnvDefaults() {
			defaults[prefix+k] = val
		}
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("env")
		key, opts := parseEnvTag(tag)
		fv := v.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv = reflect.New(ft)
				}
				fv = fv.Elem()
			}
			walk(fv, path+f.Name+": ", prefix+opts.prefix, required || opts.required, defaults, list)
			continue
		}
		if tag == "" || key == "" {
			continue
		}
		name := prefix + key
		def := opts.def
		if def == "" {
			def = defaults[name]
		}
		*list = append(*list, Setting{Name: name, Default: def, Required: required || opts.required,
			Help: f.Tag.Get("help"), Secret: f.Tag.Get("secret"), value: fv, path: path + f.Name})
	}
}

type envOpts struct {
	def, prefix string
	required    bool
}

// parseEnvTag reads what Settings needs of a go-envconfig tag: "default=" takes the rest of
// the tag, commas included, as go-envconfig does.
func parseEnvTag(tag string) (key string, o envOpts) {
	key, rest, _ := strings.Cut(tag, ",")
	for rest != "" {
		var opt string
		opt, rest, _ = strings.Cut(rest, ",")
		opt = strings.TrimLeft(opt, " ")
		switch {
		case strings.HasPrefix(opt, "default="):
			o.def = strings.TrimPrefix(opt, "default=")
			if rest != "" {
				o.def += "," + rest
			}
			rest = ""
		case strings.HasPrefix(opt, "prefix="):
			o.prefix = strings.TrimPrefix(opt, "prefix=")
		case strings.TrimSpace(opt) == "required":
			o.required = true
		}
	}
	return strings.TrimSpace(key), o
}

// Masked is the setting's value as `config` prints it: secrets as "(secret)" (empty when
// unset, so an operator sees whether one is set), a URL's password as "xxxxx", durations as
// Go writes them, an unset field with a per-owner default as that default.
func (s Setting) Masked() any {
	v := s.value
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			if s.Default == "" {
				return nil
			}
			if _, err := strconv.ParseFloat(s.Default, 64); err == nil {
				return json.Number(s.Default)
			}
			return s.Default
		}
		v = v.Elem()
	}
	switch s.Secret {
	case "":
	case "password":
		return maskPassword(v.String())
	default:
		if v.IsZero() {
			return ""
		}
		return "(secret)"
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return v.Interface()
}

// dsnPassword is a password in a keyword/value connection string: password=x or 'x y'.
var dsnPassword = regexp.MustCompile(`(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// maskPassword hides the password of a URL (in its user info or, as libpq allows, its query)
// or of a keyword/value connection string, and keeps the rest: hosts, ports, database, user.
// URLs are not read with net/url: libpq's list of hosts (h1:5432,[::1]:5433) is no RFC 3986
// authority, and a URL net/url refuses must not keep its password.
func maskPassword(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, " =") {
		return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
	}
	// As libpq, the user info ends at an '@' before the first '/'; the last one, so that a
	// password with an unescaped '@' is hidden whole.
	end := len(rest)
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		end = i
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon+1] + "xxxxx" + rest[at:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params := strings.Split(rest[q+1:], "&")
		for i, p := range params {
			if k, _, _ := strings.Cut(p, "="); k == "password" {
				params[i] = "password=xxxxx"
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
	}
	return scheme + "://" + rest
}

// lookup returns the value of the setting named name, or false if list has none.
func lookup(list []Setting, name string) (reflect.Value, bool) {
	for _, s := range list {
		if s.Name == name {
			v := s.value
			for v.Kind() == reflect.Pointer && !v.IsNil() {
				v = v.Elem()
			}
			return v, true
		}
	}
	return reflect.Value{}, false
}

// lookupString returns the string setting named name, "" if list has none.
func lookupString(list []Setting, name string) string {
	v, ok := lookup(list, name)
	if !ok || v.Kind() != reflect.String {
		return ""
	}
	return v.String()
}
