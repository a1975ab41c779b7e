# isotun(1) from `isotun --help`: the description, the global options and the commands as they are in this build,
# so the page cannot go stale. Input: System.CommandLine's help ("Section:" headings, then "  name   text" rows).
function roff(s) {
  gsub(/\\/, "\\e", s)
  gsub(/-/, "\\-", s)
  sub(/^[.']/, "\\\\\\&&", s)
  return s
}
BEGIN {
  print ".TH ISOTUN 1 \"\" \"isotun " version "\" \"User Commands\""
  print ".SH NAME"
  print "isotun \\- multi-tenant VPN over TLS, compatible with OpenConnect"
  print ".SH SYNOPSIS"
  print ".B isotun"
  print ".I command"
  print "[\\fIoptions\\fR]"
}
/^[A-Z][A-Za-z ]*:$/ { section = $0; next }
/^[[:space:]]*$/ { next }
section == "Description:" {
  sub(/^[[:space:]]+/, "")
  print ".SH DESCRIPTION"
  print roff($0)
  print ".PP"
  print "Each command has its own options: \\fBisotun \\fIcommand\\fB \\-\\-help\\fR lists them."
  next
}
section == "Options:" || section == "Commands:" {
  if (!(section in seen)) { seen[section]; print ".SH " (section == "Options:" ? "OPTIONS" : "COMMANDS") }
  sub(/^[[:space:]]+/, "")
  # The name column ends at the first run of two spaces.
  split_at = match($0, /  +/)
  if (split_at == 0) { print roff($0); next }
  print ".TP"
  print "\\fB" roff(substr($0, 1, split_at - 1)) "\\fR"
  print roff(substr($0, split_at + RLENGTH))
}
END {
  print ".SH FILES"
  print ".TP"
  print ".I /etc/isotun/isotun.yaml"
  print "the server's configuration (\\fBisotun config example\\fR prints a commented one)"
  print ".TP"
  print ".I /etc/isotun/gateway.yaml"
  print "the edge gateway's configuration (\\fBisotun gateway \\-\\-example\\fR)"
  print ".TP"
  print ".I /var/lib/isotun"
  print "the server's state file (leases, revocations) and cookie key"
  print ".SH SEE ALSO"
  print ".BR openconnect (8),"
  print ".BR systemctl (1),"
  print ".BR ip (8)"
}
