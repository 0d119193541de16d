package evaluate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// ErrInvalidRubric means a rubric cannot be scored: it has no points, or a point lacks a
// description, a positive weight or a keyword.
var ErrInvalidRubric = errors.New("invalid rubric")

// Point is one thing a good answer covers.
type Point struct {
	// Description says what the point is; feedback and the remote evaluator use it.
	Description string
	// Weight is the point's share of the score, relative to the other points; > 0.
	Weight int
	// Keywords are words or phrases; the rubric evaluator counts the point as met if any
	// of them appears in the answer (see ScoreRubric for how they match).
	Keywords []string
}

// Rubric is what a question's answers are scored against.
type Rubric struct {
	Points []Point
}

// Validate returns an error wrapping ErrInvalidRubric unless there is at least one point
// and every point has a description, a positive weight and a keyword that is not blank.
// It accepts keywords without a letter or digit, such as "++", though ScoreRubric never
// finds them: the remote evaluator may still judge the point met.
func (r Rubric) Validate() error {
	if len(r.Points) == 0 {
		return fmt.Errorf("%w: no points", ErrInvalidRubric)
	}
	for i, p := range r.Points {
		if strings.TrimSpace(p.Description) == "" {
			return fmt.Errorf("%w: point %d: empty description", ErrInvalidRubric, i)
		}
		if p.Weight <= 0 {
			return fmt.Errorf("%w: point %d: weight %d, want > 0", ErrInvalidRubric, i, p.Weight)
		}
		if !slices.ContainsFunc(p.Keywords, func(k string) bool { return strings.TrimSpace(k) != "" }) {
			return fmt.Errorf("%w: point %d: no keyword", ErrInvalidRubric, i)
		}
	}
	return nil
}

// ScoreRubric scores r.Answer against r.Rubric without any remote service.
//
// Matching is by whole words and is case- and punctuation-insensitive. Answer and keyword
// are both cut into words, maximal runs of letters and digits (so any punctuation,
// including "-", "_" and "'", separates words), and a keyword matches where its words
// appear consecutively in the answer: "GROUP BY" matches "group-by" and "Group by:", and
// "join" matches "JOIN" but neither "joins" nor "joint". No stemming: list "joins" as a
// keyword of its own if it should count.
//
// Score is 100 * (weights met) / (all weights), rounded to two decimals. An answer with no
// words meets no point and scores 0, and so does a keyword without words: "C++" is the
// word "c", "++" is nothing. ScoreRubric expects a valid rubric (see
// Rubric.Validate); a point whose weight is not positive counts for nothing, and a rubric
// without positive weights scores 0.
func ScoreRubric(r Request) Result {
	answer := words(r.Answer)
	res := Result{
		Met:       make([]int, 0, len(r.Rubric.Points)),
		Missed:    make([]int, 0, len(r.Rubric.Points)),
		Evaluator: EvaluatorRubric,
	}
	var met, total int
	for i, p := range r.Rubric.Points {
		w := max(p.Weight, 0)
		total += w
		if meets(answer, p.Keywords) {
			met += w
			res.Met = append(res.Met, i)
		} else {
			res.Missed = append(res.Missed, i)
		}
	}
	if total > 0 {
		res.Score = round2(100 * float64(met) / float64(total))
	}
	res.Feedback = summary(r.Rubric, res.Met, res.Missed)
	return res
}

// meets reports whether any keyword appears in answer, a list of words.
func meets(answer []string, keywords []string) bool {
	for _, k := range keywords {
		if containsPhrase(answer, words(k)) {
			return true
		}
	}
	return false
}

func containsPhrase(text, phrase []string) bool {
	if len(phrase) == 0 {
		return false
	}
next:
	for i := 0; i+len(phrase) <= len(text); i++ {
		for j, w := range phrase {
			// EqualFold, not ToLower: it also equates σ, ς and Σ.
			if !strings.EqualFold(text[i+j], w) {
				continue next
			}
		}
		return true
	}
	return false
}

// words splits s into runs of letters and digits. Combining marks belong to their letter,
// so a decomposed "é" stays inside its word.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// summary is the rubric evaluator's feedback, e.g.
// `met 1 of 2 points: "uses an index"; missed: "mentions EXPLAIN"`.
func summary(r Rubric, met, missed []int) string {
	var b strings.Builder
	b.WriteString("met " + strconv.Itoa(len(met)) + " of " + strconv.Itoa(len(r.Points)) + " points")
	list := func(label string, idx []int) {
		if len(idx) == 0 {
			return
		}
		b.WriteString(label)
		for n, i := range idx {
			if n > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(r.Points[i].Description))
		}
	}
	list(": ", met)
	list("; missed: ", missed)
	return b.String()
}
