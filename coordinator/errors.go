package coordinator

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrTimeout: the request's deadline passed before enough replicas answered. Errors of timed-out
	// requests are *QuorumError values with Timeout set; errors.Is(err, ErrTimeout) matches them.
	ErrTimeout = errors.New("coordinator: timeout")
	// ErrOverload: the node already runs its maximum of concurrent coordinators; retry later.
	ErrOverload = errors.New("coordinator: overload")
	// ErrShuttingDown: the node is draining and takes no new requests.
	ErrShuttingDown = errors.New("coordinator: shutting down")
	// ErrQuorum: errors.Is matches every *QuorumError.
	ErrQuorum = errors.New("coordinator: quorum not met")
	// ErrCoordinatorCrashed: the request's coordinator stopped without answering: it crashed (a bug;
	// logged), or Service.Stop stopped it.
	ErrCoordinatorCrashed = errors.New("coordinator: crashed before answering")
	// ErrBadRequest: the request's parameters are invalid (e.g. R > N).
	ErrBadRequest = errors.New("coordinator: bad request")
)

// QuorumError reports a request that did not get the replies it needed.
type QuorumError struct {
	Op      string   // "get", "put" or "delete"
	Need    int      // replies needed (R or W)
	Got     int      // successful replies received
	Primary bool     // the unmet requirement was PR/PW (primaries only)
	Timeout bool     // the deadline passed (otherwise too many replicas failed)
	Errs    []string // replica errors seen, if any
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	what := "replies"
	if e.Primary {
		what = "primary replies"
	}
	if e.Timeout {
		fmt.Fprintf(&b, "coordinator: %s timed out: need %d %s, got %d", e.Op, e.Need, what, e.Got)
	} else {
		fmt.Fprintf(&b, "coordinator: %s quorum failed: need %d %s, got %d", e.Op, e.Need, what, e.Got)
	}
	if len(e.Errs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Errs, "; "))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrQuorum) true, and errors.Is(err, ErrTimeout) true for timeouts.
func (e *QuorumError) Is(target error) bool {
	return target == ErrQuorum || (e.Timeout && target == ErrTimeout)
}
