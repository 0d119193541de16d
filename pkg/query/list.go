package query

import "context"

// Retrier runs an idempotent read again on a transient failure; *retry.Retrier is one.
type Retrier interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// ListRequest is what the request of every AIP-132 list method has, as generated.
type ListRequest interface {
	GetFilter() string
	GetOrderBy() string
	GetPageToken() string
	GetPageSize() int32
}

// RequestOf returns the Request of a list call; extra is Request.Extra.
func RequestOf(r ListRequest, extra string) Request {
	return Request{Filter: r.GetFilter(), OrderBy: r.GetOrderBy(), PageToken: r.GetPageToken(),
		PageSize: r.GetPageSize(), Extra: extra}
}

// List answers one call of a list method: it builds the query for req, reads the rows with
// read under r's retries, cuts the page, signs the next page's token and converts the rows.
// Errors are the caller's to map: a *validate.Error for bad input, else what read or r
// returned, or a mistake in the schema.
func List[T, P any](ctx context.Context, r Retrier, s *Schema[T], req Request,
	read func(context.Context, *Query) ([]T, error), convert func(T) P) ([]P, string, error) {
	q, err := s.Build(req)
	if err != nil {
		return nil, "", err
	}
	var rows []T
	err = r.Do(ctx, func(ctx context.Context) (err error) {
		rows, err = read(ctx, q)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	rows, next, err := s.Page(q, rows)
	if err != nil {
		return nil, "", err
	}
	out := make([]P, len(rows))
	for i := range rows {
		out[i] = convert(rows[i])
	}
	return out, next, nil
}
