package apierr

import (
	"slices"
	"time"

	"google.golang.org/grpc/codes"
)

// Reason is the machine-readable cause of an error: UPPER_SNAKE_CASE, unique within Domain,
// sent with one gRPC code. A reason, once published, keeps its name and meaning.
type Reason string

// Reasons that requests can fix: the request itself is wrong.
const (
	// InvalidField: one or more fields break the request's rules. A google.rpc.BadRequest
	// detail names each field and rule; metadata "fields" lists the fields, comma-separated.
	InvalidField Reason = "INVALID_FIELD"
	// MalformedRequest: the request could not be read: over gRPC, a message that is not
	// protobuf of its type (metadata "message": its full name); at the gateway, malformed
	// JSON, a value of the wrong type, an unknown field or query parameter, a malformed path.
	MalformedRequest Reason = "MALFORMED_REQUEST"
	// RequestTooLarge: the request body is over the gateway's limit (metadata "limit_bytes").
	RequestTooLarge Reason = "REQUEST_TOO_LARGE"
	// RouteNotFound: no REST route has this path (metadata "method", "path").
	RouteNotFound Reason = "ROUTE_NOT_FOUND"
	// MethodNotAllowed: the path exists but does not take this HTTP method (metadata "method",
	// "path").
	MethodNotAllowed Reason = "METHOD_NOT_ALLOWED"
	// UnknownStock: a write names stocks that do not exist (metadata "symbols"); a BadRequest
	// detail names each.
	UnknownStock Reason = "UNKNOWN_STOCK"
	// ConsistencyTokenMalformed: the pgfleet-consistency-token header is not a token a write
	// answered with.
	ConsistencyTokenMalformed Reason = "CONSISTENCY_TOKEN_MALFORMED"
	// CursorMalformed: a Watch...Events cursor is not one the service's stream gave (another
	// service's, edited, or ahead of the last event: another database's).
	CursorMalformed Reason = "CURSOR_MALFORMED"
	// ExportTokenInvalid: an ExportPrices resume_token is malformed, or was made for another
	// request (filter, range, format, batch size or recommendation source differ).
	ExportTokenInvalid Reason = "EXPORT_TOKEN_INVALID"
)

// Reasons about who is calling.
const (
	// TokenMissing: the method needs a bearer token and the call has none.
	TokenMissing Reason = "TOKEN_MISSING"
	// TokenMalformed: the authorization header is not a single "Bearer <token>".
	TokenMalformed Reason = "TOKEN_MALFORMED"
	// TokenInvalid: the token failed verification: signature, issuer, audience or expiry.
	TokenInvalid Reason = "TOKEN_INVALID"
	// RoleRequired: the caller lacks the role the method needs (metadata "method", "roles").
	RoleRequired Reason = "ROLE_REQUIRED"
	// NoAccessRule: the method has no access rule, so nobody may call it (metadata "method").
	NoAccessRule Reason = "NO_ACCESS_RULE"
	// SubjectMismatch: the request names a user other than the token's subject, which only an
	// admin may do (metadata "field", "subject").
	SubjectMismatch Reason = "SUBJECT_MISMATCH"
)

// Reasons about resources, named by their key in metadata. Another caller's resource is
// reported exactly as a missing one.
const (
	// StockNotFound: no stock has this symbol (metadata "symbol"), or, from WatchLatestPrices,
	// these symbols (metadata "symbols", comma-separated).
	StockNotFound Reason = "STOCK_NOT_FOUND"
	// PriceNotFound: the stock service has no price for the symbol, so a trade cannot be priced
	// (metadata "symbol").
	PriceNotFound Reason = "PRICE_NOT_FOUND"
	// UserNotFound: no user the caller may see has this id or email (metadata "user_id" or
	// "email").
	UserNotFound Reason = "USER_NOT_FOUND"
	// PortfolioNotFound: no portfolio the caller may see has this id (metadata
	// "portfolio_id").
	PortfolioNotFound Reason = "PORTFOLIO_NOT_FOUND"
	// QuestionNotFound: no question has this id (metadata "question_id").
	QuestionNotFound Reason = "QUESTION_NOT_FOUND"
	// SessionNotFound: no interview session the caller may see has this id (metadata
	// "session_id").
	SessionNotFound Reason = "SESSION_NOT_FOUND"
	// UserAlreadyExists: a user has this email already, in any case (metadata "email").
	UserAlreadyExists Reason = "USER_ALREADY_EXISTS"
	// PortfolioAlreadyExists: the user has a portfolio of this name already (metadata
	// "user_id", "name").
	PortfolioAlreadyExists Reason = "PORTFOLIO_ALREADY_EXISTS"
	// QuestionAlreadyExists: a question has this key already (metadata "key").
	QuestionAlreadyExists Reason = "QUESTION_ALREADY_EXISTS"
	// RequestIDReused: the request_id was used before for a different request (metadata
	// "request_id"). The same request again returns the first result instead.
	RequestIDReused Reason = "REQUEST_ID_REUSED"
	// AlreadyAnswered: the session's question has an answer already (metadata "session_id",
	// "question_id").
	AlreadyAnswered Reason = "ALREADY_ANSWERED"
)

// Reasons the state of the data gives: the request is well-formed, but not now.
const (
	// InsufficientCash: a withdrawal or a buy needs more cash than the portfolio holds
	// (metadata "portfolio_id", "available", "required").
	InsufficientCash Reason = "INSUFFICIENT_CASH"
	// Oversell: a sale of more shares than the portfolio holds (metadata "portfolio_id",
	// "symbol", "held", "requested").
	Oversell Reason = "OVERSELL"
	// LimitNotMet: the latest price is above a buy's limit or below a sell's (metadata
	// "symbol", "side", "price", "limit_price").
	LimitNotMet Reason = "LIMIT_NOT_MET"
	// BalanceLimit: a deposit or a sale would take the portfolio's cash past the largest
	// amount it holds, 99999999999999.999999 (metadata "portfolio_id", "cash", "amount", "limit").
	BalanceLimit Reason = "BALANCE_LIMIT"
	// UserNotRegistered: the token's subject has no user yet; CreateUser first (metadata
	// "email").
	UserNotRegistered Reason = "USER_NOT_REGISTERED"
	// SessionCompleted: the interview session is completed and takes no more answers or
	// questions (metadata "session_id").
	SessionCompleted Reason = "SESSION_COMPLETED"
	// NotEnoughQuestions: fewer questions match the session's criteria than it asks for
	// (metadata "available", "requested").
	NotEnoughQuestions Reason = "NOT_ENOUGH_QUESTIONS"
	// QuestionInUse: the question is part of interview sessions and cannot be deleted
	// (metadata "question_id").
	QuestionInUse Reason = "QUESTION_IN_USE"
	// StockDeleted: a stock the write refers to was deleted while it ran (retrying gives
	// UNKNOWN_STOCK).
	StockDeleted Reason = "STOCK_DELETED"
	// AppendOutOfOrder: an append_only price stream sent a bar that is not after the symbol's
	// latest stored one (metadata "symbol", "time", "latest_time"); send the stream without
	// append_only to update stored bars.
	AppendOutOfOrder Reason = "APPEND_OUT_OF_ORDER"
	// CurrencyMismatch: a trade of a stock priced in another currency than the portfolio's
	// (metadata "symbol", "stock_currency", "portfolio_currency").
	CurrencyMismatch Reason = "CURRENCY_MISMATCH"
	// PriceTooOld: the stock's latest price is older than the portfolio service's
	// MAX_PRICE_AGE, so no trade executes at it (metadata "symbol", "price_time",
	// "max_price_age").
	PriceTooOld Reason = "PRICE_TOO_OLD"
	// StockDelisted: a buy of a stock deleted from the stock service; positions in it can
	// still be sold, at its final price (metadata "symbol", "delist_time").
	StockDelisted Reason = "STOCK_DELISTED"
	// CursorExpired: the events after a Watch...Events cursor have been pruned (OUTBOX_RETENTION):
	// the consumer must resynchronize from the reads, then watch from_oldest (metadata
	// "oldest_cursor": the cursor before the oldest event kept) or from now.
	CursorExpired Reason = "CURSOR_EXPIRED"
	// ExportSnapshotExpired: the snapshot an ExportPrices resume_token reads from is gone (its
	// EXPORT_RESUME_WINDOW passed, the server holding it let it go, or the resume reached
	// another database server): start the export again without the token.
	ExportSnapshotExpired Reason = "EXPORT_SNAPSHOT_EXPIRED"
	// StaleEtag: the resource changed since the etag was read; read it again, then retry with
	// the new etag (metadata "question_id"). AIP-154.
	StaleEtag Reason = "STALE_ETAG"
)

// Reasons that pass: the same request may succeed later. They carry google.rpc.RetryInfo.
const (
	// DatabaseUnavailable: the service's database cannot be reached, or the circuit breaker in
	// front of it is open after repeated failures (metadata "breaker": "open" then).
	DatabaseUnavailable Reason = "DATABASE_UNAVAILABLE"
	// PeerUnavailable: another service this answer needs cannot be reached or keeps failing,
	// so the caller's circuit breaker for it is open: the stock service's prices for a trade,
	// or, from the gateway, the service behind the route (metadata "peer").
	PeerUnavailable Reason = "PEER_UNAVAILABLE"
	// ConcurrencyConflict: concurrent updates kept conflicting (serialization failures or
	// deadlocks) until the retry budget ran out. Nothing was written.
	ConcurrencyConflict Reason = "CONCURRENCY_CONFLICT"
	// LockTimeout: a lock the request needs was held by others longer than the lock wait
	// timeout. Nothing was written.
	LockTimeout Reason = "LOCK_TIMEOUT"
	// StreamIdle: a client stream sent nothing for longer than the service waits (metadata
	// "idle_timeout"); the call was ended and nothing it sent was written. Send it again
	// without pausing.
	StreamIdle Reason = "STREAM_IDLE"
	// TooManyStreams: the caller has as many streaming calls open as it may (metadata
	// "scope": "caller", "caller", "limit"), or the service has (metadata "scope":
	// "service", "limit"). Close a stream, or retry later.
	TooManyStreams Reason = "TOO_MANY_STREAMS"
	// TooManyRequests: the caller has as many calls running, and waiting behind them, as it
	// may (metadata "caller", "running_limit", "queue_limit"). Retry later.
	TooManyRequests Reason = "TOO_MANY_REQUESTS"
	// GatewayBusy: the gateway has as many API requests in flight as it takes (metadata
	// "limit"); it refuses more rather than grow without bound. Retry later.
	GatewayBusy Reason = "GATEWAY_BUSY"
	// ShuttingDown: the gateway is shutting down and ended this request, still running at
	// the end of its drain: a stream's last line, or a call's answer; or a service is shutting
	// down and ended a watch stream as its drain began. Retry: other replicas serve.
	ShuttingDown Reason = "SHUTTING_DOWN"
)

// Reasons named after their code. The first three are sent on purpose: a caller's cancel or
// deadline, and a failure the server logs without telling its cause. The others are the
// fallback the server adds to a status that left a handler without an ErrorInfo (logged and
// counted as pgfleet_grpc_errors_without_reason_total, so it gets a reason of its own), and
// what the gateway adds to one from a failed connection to a service.
const (
	// Cancelled: the caller cancelled the call.
	Cancelled Reason = "CANCELLED"
	// DeadlineExceeded: the call's deadline passed before it finished.
	DeadlineExceeded Reason = "DEADLINE_EXCEEDED"
	// Internal: a failure inside the service; it is logged, its cause is not sent.
	Internal Reason = "INTERNAL"
	// Unknown: an error without a code.
	Unknown Reason = "UNKNOWN"
	// InvalidArgument: INVALID_ARGUMENT without a more precise reason.
	InvalidArgument Reason = "INVALID_ARGUMENT"
	// NotFound: NOT_FOUND without a more precise reason.
	NotFound Reason = "NOT_FOUND"
	// AlreadyExists: ALREADY_EXISTS without a more precise reason.
	AlreadyExists Reason = "ALREADY_EXISTS"
	// PermissionDenied: PERMISSION_DENIED without a more precise reason.
	PermissionDenied Reason = "PERMISSION_DENIED"
	// ResourceExhausted: RESOURCE_EXHAUSTED without a more precise reason, e.g. a gRPC
	// message over the size limit.
	ResourceExhausted Reason = "RESOURCE_EXHAUSTED"
	// FailedPrecondition: FAILED_PRECONDITION without a more precise reason.
	FailedPrecondition Reason = "FAILED_PRECONDITION"
	// Aborted: ABORTED without a more precise reason.
	Aborted Reason = "ABORTED"
	// OutOfRange: OUT_OF_RANGE without a more precise reason.
	OutOfRange Reason = "OUT_OF_RANGE"
	// Unimplemented: the method is not implemented.
	Unimplemented Reason = "UNIMPLEMENTED"
	// Unavailable: UNAVAILABLE without a more precise reason, e.g. the gateway could not reach
	// a service.
	Unavailable Reason = "UNAVAILABLE"
	// DataLoss: DATA_LOSS without a more precise reason.
	DataLoss Reason = "DATA_LOSS"
	// Unauthenticated: UNAUTHENTICATED without a more precise reason.
	Unauthenticated Reason = "UNAUTHENTICATED"
)

// Retry delays sent as RetryInfo: a conflict clears as soon as the other writer commits; a
// lock holder needs longer; an outage, or a breaker that lets a probe through after its open
// timeout (seconds), longer still; a caller over its limits, until its other calls end.
const (
	conflictRetry = 100 * time.Millisecond
	lockRetry     = 500 * time.Millisecond
	outageRetry   = time.Second
	limitRetry    = time.Second
)

// reason is what a Reason is sent with.
type reason struct {
	code  codes.Code
	retry time.Duration // default RetryInfo delay; 0: none
}

// reasons holds every Reason: a constant missing here fails the package's tests.
var reasons = map[Reason]reason{
	InvalidField:     {code: codes.InvalidArgument},
	MalformedRequest: {code: codes.InvalidArgument},
	RequestTooLarge:  {code: codes.ResourceExhausted},
	RouteNotFound:    {code: codes.NotFound},
	MethodNotAllowed: {code: codes.Unimplemented},
	UnknownStock:     {code: codes.InvalidArgument},

	ConsistencyTokenMalformed: {code: codes.InvalidArgument},
	CursorMalformed:           {code: codes.InvalidArgument},
	ExportTokenInvalid:        {code: codes.InvalidArgument},

	TokenMissing:    {code: codes.Unauthenticated},
	TokenMalformed:  {code: codes.Unauthenticated},
	TokenInvalid:    {code: codes.Unauthenticated},
	RoleRequired:    {code: codes.PermissionDenied},
	NoAccessRule:    {code: codes.PermissionDenied},
	SubjectMismatch: {code: codes.PermissionDenied},

	StockNotFound:          {code: codes.NotFound},
	PriceNotFound:          {code: codes.NotFound},
	UserNotFound:           {code: codes.NotFound},
	PortfolioNotFound:      {code: codes.NotFound},
	QuestionNotFound:       {code: codes.NotFound},
	SessionNotFound:        {code: codes.NotFound},
	UserAlreadyExists:      {code: codes.AlreadyExists},
	PortfolioAlreadyExists: {code: codes.AlreadyExists},
	QuestionAlreadyExists:  {code: codes.AlreadyExists},
	RequestIDReused:        {code: codes.AlreadyExists},
	AlreadyAnswered:        {code: codes.AlreadyExists},

	InsufficientCash:      {code: codes.FailedPrecondition},
	Oversell:              {code: codes.FailedPrecondition},
	LimitNotMet:           {code: codes.FailedPrecondition},
	BalanceLimit:          {code: codes.FailedPrecondition},
	UserNotRegistered:     {code: codes.FailedPrecondition},
	SessionCompleted:      {code: codes.FailedPrecondition},
	NotEnoughQuestions:    {code: codes.FailedPrecondition},
	QuestionInUse:         {code: codes.FailedPrecondition},
	StockDeleted:          {code: codes.FailedPrecondition},
	AppendOutOfOrder:      {code: codes.FailedPrecondition},
	CurrencyMismatch:      {code: codes.FailedPrecondition},
	PriceTooOld:           {code: codes.FailedPrecondition},
	StockDelisted:         {code: codes.FailedPrecondition},
	CursorExpired:         {code: codes.FailedPrecondition},
	ExportSnapshotExpired: {code: codes.FailedPrecondition},
	StaleEtag:             {code: codes.Aborted},

	DatabaseUnavailable: {code: codes.Unavailable, retry: outageRetry},
	PeerUnavailable:     {code: codes.Unavailable, retry: outageRetry},
	ConcurrencyConflict: {code: codes.Aborted, retry: conflictRetry},
	LockTimeout:         {code: codes.Aborted, retry: lockRetry},
	StreamIdle:          {code: codes.Aborted, retry: limitRetry},
	TooManyStreams:      {code: codes.ResourceExhausted, retry: limitRetry},
	TooManyRequests:     {code: codes.ResourceExhausted, retry: limitRetry},
	GatewayBusy:         {code: codes.ResourceExhausted, retry: limitRetry},
	ShuttingDown:        {code: codes.Unavailable, retry: outageRetry},

	Cancelled:          {code: codes.Canceled},
	DeadlineExceeded:   {code: codes.DeadlineExceeded},
	Internal:           {code: codes.Internal},
	Unknown:            {code: codes.Unknown},
	InvalidArgument:    {code: codes.InvalidArgument},
	NotFound:           {code: codes.NotFound},
	AlreadyExists:      {code: codes.AlreadyExists},
	PermissionDenied:   {code: codes.PermissionDenied},
	ResourceExhausted:  {code: codes.ResourceExhausted},
	FailedPrecondition: {code: codes.FailedPrecondition},
	Aborted:            {code: codes.Aborted},
	OutOfRange:         {code: codes.OutOfRange},
	Unimplemented:      {code: codes.Unimplemented},
	Unavailable:        {code: codes.Unavailable},
	DataLoss:           {code: codes.DataLoss},
	Unauthenticated:    {code: codes.Unauthenticated},
}

// byCode is the reason named after each code, for statuses that arrive without one.
var byCode = map[codes.Code]Reason{
	codes.Canceled: Cancelled, codes.Unknown: Unknown, codes.InvalidArgument: InvalidArgument,
	codes.DeadlineExceeded: DeadlineExceeded, codes.NotFound: NotFound, codes.AlreadyExists: AlreadyExists,
	codes.PermissionDenied: PermissionDenied, codes.ResourceExhausted: ResourceExhausted,
	codes.FailedPrecondition: FailedPrecondition, codes.Aborted: Aborted, codes.OutOfRange: OutOfRange,
	codes.Unimplemented: Unimplemented, codes.Internal: Internal, codes.Unavailable: Unavailable,
	codes.DataLoss: DataLoss, codes.Unauthenticated: Unauthenticated,
}

// Code returns the gRPC code r is sent with; Unknown for a Reason not defined here.
func (r Reason) Code() codes.Code {
	if s, ok := reasons[r]; ok {
		return s.code
	}
	return codes.Unknown
}

// RetryDelay returns the RetryInfo delay New gives r, 0 for none.
func (r Reason) RetryDelay() time.Duration { return reasons[r].retry }

// ForCode returns the reason named after code c (Unknown for OK or a code out of range).
func ForCode(c codes.Code) Reason {
	if r, ok := byCode[c]; ok {
		return r
	}
	return Unknown
}

// All returns every defined reason, sorted.
func All() []Reason {
	out := make([]Reason, 0, len(reasons))
	for r := range reasons {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
