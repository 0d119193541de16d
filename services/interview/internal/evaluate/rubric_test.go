package evaluate_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
)

// joins weighs 2:1:1, so meeting point 0 alone scores 50.
var joins = evaluate.Rubric{Points: []evaluate.Point{
	{Description: "names a join", Weight: 2, Keywords: []string{"join", "inner join"}},
	{Description: "groups rows", Weight: 1, Keywords: []string{"group by"}},
	{Description: "uses an index", Weight: 1, Keywords: []string{"index", "indexes"}},
}}

const (
	feedbackAll  = `met 3 of 3 points: "names a join", "groups rows", "uses an index"`
	feedbackNone = `met 0 of 3 points; missed: "names a join", "groups rows", "uses an index"`
)

func TestScoreRubric(t *testing.T) {
	t.Parallel()
	thirds := evaluate.Rubric{Points: []evaluate.Point{
		{Description: "a", Weight: 1, Keywords: []string{"alpha"}},
		{Description: "b", Weight: 1, Keywords: []string{"beta"}},
		{Description: "c", Weight: 1, Keywords: []string{"gamma"}},
	}}
	rubric := func(p ...evaluate.Point) evaluate.Rubric { return evaluate.Rubric{Points: p} }
	tests := []struct {
		name   string
		rubric evaluate.Rubric
		answer string
		want   evaluate.Result
	}{
		{
			name:   "all_met",
			rubric: joins,
			answer: "A join, then group by, served by an index.",
			want:   rubricResult(100, []int{0, 1, 2}, []int{}, feedbackAll),
		},
		{
			name:   "heavy_point_met",
			rubric: joins,
			answer: "An inner join.",
			want: rubricResult(50, []int{0}, []int{1, 2},
				`met 1 of 3 points: "names a join"; missed: "groups rows", "uses an index"`),
		},
		{
			name:   "light_points_met",
			rubric: joins,
			answer: "Group by the indexes.",
			want: rubricResult(50, []int{1, 2}, []int{0},
				`met 2 of 3 points: "groups rows", "uses an index"; missed: "names a join"`),
		},
		{
			name:   "rounded_to_two_decimals",
			rubric: thirds,
			answer: "alpha",
			want:   rubricResult(33.33, []int{0}, []int{1, 2}, `met 1 of 3 points: "a"; missed: "b", "c"`),
		},
		{
			name:   "rounded_up",
			rubric: thirds,
			answer: "alpha beta",
			want:   rubricResult(66.67, []int{0, 1}, []int{2}, `met 2 of 3 points: "a", "b"; missed: "c"`),
		},
		{
			name:   "none_met",
			rubric: joins,
			answer: "I would ask a colleague.",
			want:   rubricResult(0, []int{}, []int{0, 1, 2}, feedbackNone),
		},
		{
			name:   "empty_answer",
			rubric: joins,
			answer: "",
			want:   rubricResult(0, []int{}, []int{0, 1, 2}, feedbackNone),
		},
		{
			name:   "punctuation_only_answer",
			rubric: joins,
			answer: " ... ?! -- ",
			want:   rubricResult(0, []int{}, []int{0, 1, 2}, feedbackNone),
		},
		{
			name:   "case_and_punctuation",
			rubric: joins,
			answer: "JOIN!GROUP-BY;(Index)",
			want:   rubricResult(100, []int{0, 1, 2}, []int{}, feedbackAll),
		},
		{
			name:   "phrase_across_lines",
			rubric: joins,
			answer: "join ... GROUP\n\tBY ... index",
			want:   rubricResult(100, []int{0, 1, 2}, []int{}, feedbackAll),
		},
		{
			name:   "phrase_words_not_adjacent",
			rubric: rubric(joins.Points[1]),
			answer: "group the rows by day",
			want:   rubricResult(0, []int{}, []int{0}, `met 0 of 1 points; missed: "groups rows"`),
		},
		{
			name:   "no_match_inside_words",
			rubric: joins,
			answer: "a joint rejoinder joins joined regrouping reindexing indexed",
			want:   rubricResult(0, []int{}, []int{0, 1, 2}, feedbackNone),
		},
		{
			name:   "punctuated_keyword",
			rubric: rubric(evaluate.Point{Description: "view", Weight: 1, Keywords: []string{"pg_stat_activity"}}),
			answer: "Look at pg_stat_activity.",
			want:   rubricResult(100, []int{0}, []int{}, `met 1 of 1 points: "view"`),
		},
		{
			name:   "unicode_case_folding",
			rubric: rubric(evaluate.Point{Description: "δρόμος", Weight: 1, Keywords: []string{"ΟΔΟΣ", "café"}}),
			answer: "οδος", // Σ folds to final ς
			want:   rubricResult(100, []int{0}, []int{}, `met 1 of 1 points: "δρόμος"`),
		},
		{
			name:   "accented_keyword",
			rubric: rubric(evaluate.Point{Description: "cafe", Weight: 1, Keywords: []string{"café"}}),
			answer: "CAFÉ.",
			want:   rubricResult(100, []int{0}, []int{}, `met 1 of 1 points: "cafe"`),
		},
		{
			name:   "symbol_only_keyword_never_matches",
			rubric: rubric(evaluate.Point{Description: "ops", Weight: 1, Keywords: []string{"++", "--"}}),
			answer: "i++ and i--",
			want:   rubricResult(0, []int{}, []int{0}, `met 0 of 1 points; missed: "ops"`),
		},
		{
			name: "non_positive_weight_counts_for_nothing",
			rubric: rubric(
				evaluate.Point{Description: "a", Weight: 0, Keywords: []string{"alpha"}},
				evaluate.Point{Description: "b", Weight: 1, Keywords: []string{"beta"}},
			),
			answer: "alpha",
			want:   rubricResult(0, []int{0}, []int{1}, `met 1 of 2 points: "a"; missed: "b"`),
		},
		{
			name:   "no_points",
			rubric: evaluate.Rubric{},
			answer: "anything",
			want:   rubricResult(0, []int{}, []int{}, "met 0 of 0 points"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := evaluate.ScoreRubric(evaluate.Request{Rubric: tc.rubric, Answer: tc.answer})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ScoreRubric(%q) mismatch (-want +got):\n%s", tc.answer, diff)
			}
		})
	}
}

func rubricResult(score float64, met, missed []int, feedback string) evaluate.Result {
	return evaluate.Result{Score: score, Met: met, Missed: missed, Evaluator: "rubric", Feedback: feedback}
}

func TestRubric_Validate(t *testing.T) {
	t.Parallel()
	point := func(desc string, weight int, keywords ...string) evaluate.Rubric {
		return evaluate.Rubric{Points: []evaluate.Point{
			joins.Points[0], {Description: desc, Weight: weight, Keywords: keywords},
		}}
	}
	tests := []struct {
		name    string
		rubric  evaluate.Rubric
		wantErr error
	}{
		{name: "valid", rubric: joins},
		{name: "symbol_keyword", rubric: point("d", 1, "++")},
		{name: "no_points", rubric: evaluate.Rubric{}, wantErr: evaluate.ErrInvalidRubric},
		{name: "blank_description", rubric: point(" ", 1, "k"), wantErr: evaluate.ErrInvalidRubric},
		{name: "zero_weight", rubric: point("d", 0, "k"), wantErr: evaluate.ErrInvalidRubric},
		{name: "negative_weight", rubric: point("d", -1, "k"), wantErr: evaluate.ErrInvalidRubric},
		{name: "no_keywords", rubric: point("d", 1), wantErr: evaluate.ErrInvalidRubric},
		{name: "blank_keywords_only", rubric: point("d", 1, "", " \t"), wantErr: evaluate.ErrInvalidRubric},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.rubric.Validate()
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Validate() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
