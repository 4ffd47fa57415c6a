package config

import (
	"errors"
	"strconv"
	"strings"
	"unicode"

	"github.com/robfig/cron/v3"
)

// checkGitURL refuses git values that would make git do something other than fetch: an option in place of
// the URL, or the ext:: transport, which runs a command.
func checkGitURL(u string) string {
	switch {
	case strings.ContainsAny(u, "\n\r\x00"):
		return "git value contains a control character"
	case strings.HasPrefix(u, "-"):
		return "git " + quoteRedacted(u) + " looks like an option, not a repository"
	case strings.HasPrefix(strings.ToLower(u), "ext::"), strings.Contains(strings.ToLower(u), "::") && !strings.Contains(u, "://"):
		return "git " + quoteRedacted(u) + ": the ext:: and other remote-helper transports are refused"
	}
	return ""
}

func quoteRedacted(u string) string {
	return strconv.Quote(RedactURL(u))
}

// RedactURL hides the password or token of a URL's user info, so that it can be logged and shown in plans:
// https://user:secret@host/x becomes https://user:***@host/x, and https://token@host/x becomes
// https://***@host/x.
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u // scp-like user@host:path has no password
	}
	at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@")
	if at < 0 {
		return u
	}
	userinfo := rest[:at]
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":***" + rest[at:]
	}
	if scheme == "ssh" || scheme == "git+ssh" {
		return u // a bare user name, not a secret
	}
	return scheme + "://***" + rest[at:]
}

// scheduleParser reads standard five-field cron specs and the @hourly, @daily, @weekly, @monthly,
// @yearly and @every <duration> shortcuts.
var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron spec of the settings.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.IndexFunc(spec, unicode.IsControl) >= 0 {
		// The cron parser repeats a faulty field as is in its error, and a control character has no place
		// in a schedule anyway.
		return nil, errors.New("a schedule holds no control characters")
	}
	return scheduleParser.Parse(spec)
}
