// Package querytest checks, from outside a service, the list methods it builds on package
// query: that their page tokens hold the right values of every field they sort by.
package querytest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Lister reads one page of a list method in the given order: the keys of its rows, in
// order, and the next page's token.
type Lister func(ctx context.Context, orderBy, pageToken string, pageSize int32) (keys []string, next string, err error)

// PagesMatch checks, for each field ascending and descending, that walking a list in pages
// of pageSize gives the rows of one page that holds them all, in the same order. A field's
// Value that reads the wrong value of a row makes the next page start elsewhere, so rows
// repeat or go missing.
func PagesMatch(t *testing.T, list Lister, pageSize int32, fields ...string) {
	t.Helper()
	var orders []string
	for _, f := range fields {
		orders = append(orders, f, f+" desc")
	}
	for _, orderBy := range orders {
		t.Run(orderBy, func(t *testing.T) {
			t.Parallel()
			whole, next, err := list(t.Context(), orderBy, "", 1000)
			if err != nil || next != "" {
				t.Fatalf("one page of all rows: next %q, %v; want no next page", next, err)
			}
			if len(whole) <= int(pageSize) {
				t.Fatalf("%d rows fill no second page of %d; the test data should", len(whole), pageSize)
			}
			var paged []string
			for token := ""; ; {
				keys, next, err := list(t.Context(), orderBy, token, pageSize)
				if err != nil {
					t.Fatalf("page after %d rows: %v", len(paged), err)
				}
				paged = append(paged, keys...)
				if next == "" || len(paged) > len(whole) {
					break
				}
				token = next
			}
			if diff := cmp.Diff(whole, paged); diff != "" {
				t.Errorf("order_by %q: pages differ from one page (-want +got):\n%s", orderBy, diff)
			}
		})
	}
}

// Keys returns the key of each item, for a Lister.
func Keys[T any](items []T, key func(T) string) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = key(it)
	}
	return keys
}
