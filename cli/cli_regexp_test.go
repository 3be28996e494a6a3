package cli

import "regexp"

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
func regexpQuote(s string) string   { return regexp.QuoteMeta(s) }
