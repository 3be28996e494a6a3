package memcache

import "time"

// MaxRelativeExptime is the largest exptime taken as seconds from now (30 days); larger values are absolute
// unix times (protocol.txt, "Expiration times").
const MaxRelativeExptime = 60 * 60 * 24 * 30

// ExpiryAt turns a protocol exptime into an absolute unix time in seconds, given the current unix time:
//
//	exptime == 0                      -> 0 (never expires)
//	exptime < 0                       -> a time in the past (immediately expired): nowUnix-1, at least 1
//	0 < exptime <= MaxRelativeExptime -> nowUnix + exptime
//	exptime > MaxRelativeExptime      -> exptime (an absolute time; in the past means already expired)
//
// It is pure; the server passes its clock. Expired tells whether such a time has passed.
func ExpiryAt(exptime int64, nowUnix int64) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		if nowUnix > 1 {
			return nowUnix - 1
		}
		return 1
	case exptime <= MaxRelativeExptime:
		return nowUnix + exptime
	default:
		return exptime
	}
}

// FlushAt is the time a flush_all (binary FLUSH) with delay exptime, issued at now, names: the values
// written at or before it are gone from then on. Without a delay (0, or one that names a time not after
// now) it is now itself. With one, it is a nanosecond before the second the delay names (an exptime, as
// ExpiryAt reads it), as memcached's oldest_live = realtime(exptime) - 1: values stored during that second
// stay.
func FlushAt(exptime int64, now time.Time) time.Time {
	nowSec := now.Unix()
	at := ExpiryAt(exptime, nowSec)
	if at <= nowSec {
		return now
	}
	return time.Unix(at, 0).Add(-time.Nanosecond)
}

// Expired reports whether a value with the given absolute expiry (0 = never) is expired at nowUnix. As in
// memcached, a value is gone from the second its expiry names.
func Expired(expiry int64, nowUnix int64) bool {
	return expiry != 0 && expiry <= nowUnix
}
