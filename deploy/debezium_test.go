package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// TestDebezium_outboxConnectors holds deploy/debezium's Kafka Connect configurations to the
// outbox table the services create (outbox.Migration): an operator who outgrows one database
// streams it into Kafka with them, without a code change, so every column they name must be
// one the table has, and only inserts may be routed (the sequencer's updates and the
// pruning's deletes are not events).
func TestDebezium_outboxConnectors(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"stock", "portfolio", "interview"} {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile("debezium/" + svc + "-outbox.json")
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Name   string            `json:"name"`
				Config map[string]string `json:"config"`
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			ddl := outbox.Migration(1, svc).Up
			column := func(name string) bool {
				return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(name) + `\s`).MatchString(ddl)
			}
			want := map[string]string{
				"connector.class":                  "io.debezium.connector.postgresql.PostgresConnector",
				"plugin.name":                      "pgoutput",
				"table.include.list":               svc + ".outbox",
				"skipped.operations":               "u,d,t",
				"transforms":                       "outbox",
				"transforms.outbox.type":           "io.debezium.transforms.outbox.EventRouter",
				"database.hostname":                "pgfleet-" + svc + "-rw", // the CloudNativePG primary's Service
				"transforms.outbox.route.by.field": "aggregatetype",
			}
			for k, v := range want {
				if c.Config[k] != v {
					t.Errorf("%s = %q, want %q", k, c.Config[k], v)
				}
			}
			for _, k := range []string{"table.field.event.id", "table.field.event.key", "table.field.event.payload",
				"table.field.event.timestamp", "route.by.field"} {
				col := c.Config["transforms.outbox."+k]
				if !column(col) {
					t.Errorf("transforms.outbox.%s = %q: not a column of the outbox table", k, col)
				}
			}
			if p := c.Config["transforms.outbox.table.fields.additional.placement"]; !column(regexp.MustCompile(`^[a-z_]+`).FindString(p)) {
				t.Errorf("additional placement %q names no outbox column", p)
			}
		})
	}
}
