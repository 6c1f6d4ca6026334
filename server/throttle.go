package server

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Per-address throttling of the routes anyone may call: a token bucket per
// client network (the IPv4 address, or the IPv6 /64, of the TCP peer).
//
// The buckets live in this process, not in etcd: their job is to bound
// the work one address can make this replica do (a bcrypt comparison per
// password login, a listing per device login start), and that work is
// per replica too; with N replicas behind a TCP load balancer one address
// gets at most N times the rate, which still bounds every replica. What
// must hold cluster-wide, the lockout of a guessed user name, is kept in
// etcd (service/loginlimit.go).
//
// The address is the socket's peer, r.RemoteAddr, never X-Forwarded-For,
// which anyone can send. accessd terminates TLS itself (sessions are
// mTLS), so there is no HTTP proxy in front whose address would hide
// everyone's; a TCP load balancer that rewrites source addresses would
// make all clients share one bucket, and is not supported.

// Rates of the anonymous routes, per client network.
var (
	// A password login costs a bcrypt comparison (~65 ms of a core): ten
	// a second keeps one address from taking more than a core, while a
	// whole office behind one NAT address can still log in at once.
	passwordLoginLimit = throttleLimit{perSecond: 10, burst: 20}
	// A device login start lists the pending codes and writes one; people
	// start one at a time, and an address holds at most three unconfirmed
	// codes anyway.
	deviceStartLimit = throttleLimit{perSecond: 2, burst: 10}
	// A redeem is a long poll of up to 20 s; the CLI asks again at once
	// only after an answer, so a few a second is plenty.
	deviceRedeemLimit = throttleLimit{perSecond: 10, burst: 20}
)

// Housekeeping of the buckets.
const (
	// throttleSweepEvery: idle buckets (full again) are dropped this often,
	// so one-off addresses do not accumulate.
	throttleSweepEvery = time.Minute
	// maxThrottleBuckets bounds the memory an address sweep can take
	// (about 200 bytes a bucket); beyond it, new addresses share one
	// overflow bucket until the next sweep frees room.
	maxThrottleBuckets = 1 << 16
)

type throttleLimit struct {
	perSecond float64
	burst     int
}

// throttle is the set of buckets of one route.
type throttle struct {
	limit     throttleLimit
	now       func() time.Time
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newThrottle(l throttleLimit, now func() time.Time) *throttle {
	return &throttle{limit: l, now: now, buckets: map[string]*rate.Limiter{}, lastSweep: now(), overflow: l.bucket()}
}

func (l throttleLimit) bucket() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
}

// allow takes a token from the bucket of network, or says how long until
// one is there.
func (t *throttle) allow(network string) (bool, time.Duration) {
	now := t.now()
	t.mu.Lock()
	if now.Sub(t.lastSweep) >= throttleSweepEvery {
		t.sweep(now)
	}
	b, ok := t.buckets[network]
	if !ok {
		if len(t.buckets) < maxThrottleBuckets {
			b = t.limit.bucket()
			t.buckets[network] = b
		} else {
			b = t.overflow
		}
	}
	t.mu.Unlock()
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	return false, time.Duration(missing / t.limit.perSecond * float64(time.Second))
}

// sweep drops the buckets that are full again: forgetting them changes
// nothing, since a new bucket starts full. Called with mu held.
func (t *throttle) sweep(now time.Time) {
	for k, b := range t.buckets {
		if b.TokensAt(now) >= float64(t.limit.burst) {
			delete(t.buckets, k)
		}
	}
	t.lastSweep = now
}

// wrap refuses a request over its address's rate with 429 and
// Retry-After, before reading its body.
func (t *throttle) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok, wait := t.allow(access.ClientNetwork(r.RemoteAddr))
		if !ok {
			writeError(w, &access.RetryError{Wait: wait, Msg: fmt.Sprintf(
				"too many requests from your address; try again in %s", retryAfterSeconds(wait)+"s")})
			return
		}
		h(w, r)
	}
}

// loginThrottles are the buckets of the three anonymous login routes.
type loginThrottles struct {
	password, deviceStart, deviceRedeem *throttle
}

func newLoginThrottles(now func() time.Time) loginThrottles {
	return loginThrottles{
		password:     newThrottle(passwordLoginLimit, now),
		deviceStart:  newThrottle(deviceStartLimit, now),
		deviceRedeem: newThrottle(deviceRedeemLimit, now),
	}
}

// setRetryAfter sets Retry-After for an error that says when to come back.
func setRetryAfter(w http.ResponseWriter, err error) {
	if wait, ok := access.RetryAfter(err); ok {
		w.Header().Set("Retry-After", retryAfterSeconds(wait))
	}
}

// retryAfterSeconds is wait in whole seconds, rounded up, at least 1: a
// client that waits what it is told is not refused again for being early.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10)
}
