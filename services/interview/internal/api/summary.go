package api

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// Thresholds of a summary.
const (
	strengthScore = 70 // a category scored at least this is a strength
	maxGaps       = 10
)

// summarize sums up a session's questions: unanswered questions score 0 and count all their
// rubric points as missed.
func summarize(qs []store.SessionQuestion) *interviewv1.Summary {
	s := &interviewv1.Summary{Total: int32(len(qs))}
	type acc struct {
		sum float64
		n   int32
	}
	byCategory := map[string]*acc{}
	var categories []string
	missed := map[string]int{}
	var total float64
	for _, q := range qs {
		a := byCategory[q.Category]
		if a == nil {
			a = &acc{}
			byCategory[q.Category] = a
			categories = append(categories, q.Category)
		}
		a.n++
		if q.Answer == nil {
			for _, p := range q.Rubric.Points {
				missed[p.Description]++
			}
			continue
		}
		s.Answered++
		score := deref(q.Score)
		a.sum += score
		total += score
		for _, m := range q.Missed {
			missed[m]++
		}
	}
	if len(qs) > 0 {
		s.OverallScore = round2(total / float64(len(qs)))
	}
	slices.Sort(categories)
	for _, c := range categories {
		a := byCategory[c]
		score := round2(a.sum / float64(a.n))
		s.Categories = append(s.Categories, &interviewv1.CategoryScore{Category: c, Score: score, Questions: a.n})
		if score >= strengthScore {
			s.Strengths = append(s.Strengths, c)
		}
	}
	gaps := make([]string, 0, len(missed))
	for g := range missed {
		gaps = append(gaps, g)
	}
	slices.SortFunc(gaps, func(a, b string) int {
		if c := cmp.Compare(missed[b], missed[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	s.Gaps = gaps[:min(len(gaps), maxGaps)]
	return s
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func encodeSummary(s *interviewv1.Summary) (json.RawMessage, error) {
	return protojson.Marshal(s)
}

func decodeSummary(raw json.RawMessage) *interviewv1.Summary {
	s := &interviewv1.Summary{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil // written by encodeSummary; unreadable only if hand-edited
	}
	return s
}
