#!/usr/bin/env bash
# A real Redmine 5.0 (Debian 12 packages, SQLite) on 127.0.0.1 for the
# integration tests and the Redmine benchmark. Run as root.
#
#   scripts/redmine.sh setup     install (apt), enable the REST API with a fixed
#                                admin API key, snapshot the empty database, start
#   scripts/redmine.sh start | stop | restart | status
#   scripts/redmine.sh reset     put the database back to the post-setup snapshot
#   scripts/redmine.sh seed PROJECT COUNT
#                                create PROJECT with COUNT issues in trees of ten
#                                (one Rails process and a bulk insert, not COUNT requests)
#   scripts/redmine.sh query PROJECT NAME TRACKER_ID
#                                save a public query "NAME" in PROJECT: open
#                                issues of one tracker; prints its id
#   scripts/redmine.sh key LOGIN KEY
#                                give user LOGIN the API key KEY (40 hex
#                                characters): tests acting as a non-admin
#
# Environment: REDMINE_PORT (default 3000), REDMINE_API_KEY (40 hex characters;
# a fixed test key by default). The server runs as www-data, is started with
# start-stop-daemon and stopped by the PID it recorded.
#
# The recipe and its pitfalls are in ../shared/notes/redmine-for-tests.md:
# `rackup` (not `rails server`) with the `thin` package, rails/sqlite run as
# www-data, `login_required` on so that a wrong key answers 401.
set -euo pipefail

REDMINE_PORT="${REDMINE_PORT:-3000}"
REDMINE_API_KEY="${REDMINE_API_KEY:-0123456789abcdef0123456789abcdef01234567}"
REDMINE_URL="http://127.0.0.1:${REDMINE_PORT}"
APP=/usr/share/redmine
DBDIR=/var/lib/dbconfig-common/sqlite3/redmine/instances/default
DB="$DBDIR/redmine_default"
SNAPSHOT="$DBDIR/trellis-clean.sqlite3"
PIDFILE=/run/trellis-redmine.pid
SERVER_LOG=/var/log/redmine/trellis-server.log
SCRIPTS=/var/lib/redmine/trellis

say() { echo "[redmine] $*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
took() {
  local ms=$(($(now_ms) - $2))
  say "$(printf '%-16s %d.%03ds' "$1" $((ms / 1000)) $((ms % 1000)))"
}

as_redmine() { runuser -u www-data -- "$@"; }
rails_runner() { (cd "$APP" && as_redmine env "$@"); }

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  # The postinst takes the language of the default data (Bug, New, Normal) from LANG.
  export LANG=C.UTF-8
  local missing=no package
  for package in redmine redmine-sqlite thin sqlite3 curl; do
    # `dpkg -s` also succeeds for removed packages whose config files remain.
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = installed ] || missing=yes
  done
  if [ "$missing" = no ]; then
    say "packages already installed"
    return
  fi
  local t log=/tmp/trellis-redmine-apt.log
  t=$(now_ms)
  apt-get update -q >"$log" 2>&1 || { cat "$log"; exit 1; }
  # --no-install-recommends skips passenger, ghostscript and fonts; thin is the
  # app server Debian's Gemfile picks up when it is installed.
  apt-get install -y -q --no-install-recommends redmine redmine-sqlite thin sqlite3 curl \
    >>"$log" 2>&1 || { tail -n 80 "$log"; exit 1; }
  took "apt-get" "$t"
}

configure() {
  local t
  t=$(now_ms)
  # No SMTP here: keep mail in memory.
  printf 'default:\n  email_delivery:\n    delivery_method: :test\n' \
    >/etc/redmine/default/configuration.yml
  chown root:www-data /etc/redmine/default/configuration.yml
  chmod 640 /etc/redmine/default/configuration.yml
  # Rails' SQLite adapter has no busy timeout by default: a request that meets
  # another writer (a seeding script, a parallel test) would fail with 500.
  grep -q '^  timeout:' /etc/redmine/default/database.yml ||
    sed -i 's/^  adapter: sqlite3$/  adapter: sqlite3\n  timeout: 10000/' /etc/redmine/default/database.yml
  mkdir -p "$SCRIPTS"
  cat >"$SCRIPTS/setup.rb" <<'EOF'
key = ENV.fetch('REDMINE_API_KEY')
Setting.rest_api_enabled = '1'
Setting.login_required = '1'   # a wrong key answers 401 instead of acting as anonymous
# No notification mails at all: even with delivery_method :test each one is
# rendered by a background job that writes to the database, and issues
# created quickly through the API then meet it and fail with 500
# (SQLite3::BusyException: database is locked).
Setting.notified_events = []
admin = User.find_by_login!('admin')
Token.where(user_id: admin.id, action: 'api').delete_all
# Token generates a random value on create; fix it afterwards.
Token.create!(user: admin, action: 'api').update_column(:value, key)
admin.update_columns(must_change_passwd: false, language: 'en', mail_notification: 'none')
EOF
  cat >"$SCRIPTS/seed.rb" <<'EOF'
# A project with COUNT issues in trees of ten: a root, three children, and
# six grandchildren under the first child. Saving issues one by one costs
# about 45 ms each (nested-set updates, parent recalculation), so the rows
# are inserted in bulk with their nested set (lft/rgt/root_id) computed
# here, as Redmine would have stored them.
identifier = ENV.fetch('PROJECT')
count = Integer(ENV.fetch('COUNT'))
admin = User.find_by_login!('admin')
project = Project.create!(name: identifier, identifier: identifier, is_public: false,
                          enabled_module_names: ['issue_tracking'], tracker_ids: Tracker.pluck(:id))
status = IssueStatus.order(:position).first
priority = IssuePriority.default || IssuePriority.first
trackers = Tracker.order(:position).pluck(:id)
first_id = (Issue.maximum(:id) || 0) + 1
parents = Array.new(count) do |i|
  p = case i % 10
      when 0 then nil
      when 1..3 then i - (i % 10)
      else i - (i % 10) + 1
      end
  p && p < count ? p : nil
end
children = Hash.new { |h, k| h[k] = [] }
parents.each_with_index { |p, i| children[p] << i if p }
lft = {}; rgt = {}; root = {}
number = lambda do |i, r, at|
  root[i] = r; lft[i] = at; at += 1
  children[i].each { |c| at = number.call(c, r, at) }
  rgt[i] = at
  at + 1
end
count.times { |i| number.call(i, i, 1) if parents[i].nil? }
now = Time.now
rows = Array.new(count) do |i|
  { id: first_id + i, project_id: project.id, tracker_id: trackers[i % trackers.size],
    status_id: status.id, priority_id: priority.id, author_id: admin.id,
    subject: "Seeded issue #{i + 1}", parent_id: parents[i] && first_id + parents[i],
    root_id: first_id + root[i], lft: lft[i], rgt: rgt[i], lock_version: 0, done_ratio: 0,
    is_private: false, created_on: now, updated_on: now, start_date: now.to_date }
end
rows.each_slice(500) { |slice| Issue.insert_all!(slice) }
puts project.id
EOF
  cat >"$SCRIPTS/query.rb" <<'EOF'
project = Project.find_by!(identifier: ENV.fetch('PROJECT'))
query = IssueQuery.new(name: ENV.fetch('NAME'), project: project, user: User.find_by_login!('admin'),
                       visibility: Query::VISIBILITY_PUBLIC)
query.add_filter('status_id', 'o', [''])
query.add_filter('tracker_id', '=', [ENV.fetch('TRACKER_ID')])
query.save!
puts query.id
EOF
  chmod 644 "$SCRIPTS"/*.rb
  rails_runner REDMINE_API_KEY="$REDMINE_API_KEY" bin/rails runner -e production "$SCRIPTS/setup.rb"
  took "configure" "$t"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  if running; then
    say "already running: $REDMINE_URL pid $(cat "$PIDFILE")"
    return 0
  fi
  local t
  t=$(now_ms)
  start-stop-daemon --start --background --make-pidfile --pidfile "$PIDFILE" \
    --chuid www-data:www-data --chdir "$APP" --output "$SERVER_LOG" \
    --exec /usr/bin/rackup -- -E production -o 127.0.0.1 -p "$REDMINE_PORT"
  for _ in $(seq 1 240); do
    if curl -fs -o /dev/null -H "X-Redmine-API-Key: $REDMINE_API_KEY" "$REDMINE_URL/users/current.json"; then
      took "start" "$t"
      say "up: $REDMINE_URL pid $(cat "$PIDFILE")"
      return 0
    fi
    sleep 0.25
  done
  say "Redmine did not answer within 60 s"
  cat "$SERVER_LOG" >&2 || true
  tail -n 40 /var/log/redmine/default/production.log >&2 || true
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  # --user: a PID reused by another program after a crash is left alone.
  if start-stop-daemon --stop --quiet --pidfile "$PIDFILE" --remove-pidfile \
    --user www-data --retry TERM/10/KILL/5; then
    say "stopped"
  else
    rm -f "$PIDFILE"
    say "was not running"
  fi
}

# An online restore through SQLite's backup API: 10-30 ms, the server keeps
# running. Only between tests: Rails' SQLite has no busy timeout.
reset() { as_redmine sqlite3 "$DB" ".timeout 10000" ".restore $SNAPSHOT"; }

case "${1:-}" in
  setup)
    T0=$(now_ms)
    [ "$(id -u)" = 0 ] || { say "setup installs Debian packages: run it as root"; exit 1; }
    install_packages
    stop
    # Back to the clean database first, so that configuring (a new key, a
    # changed setup.rb) lands in the snapshot instead of being undone by it.
    [ -f "$SNAPSHOT" ] && reset
    configure
    as_redmine sqlite3 "$DB" ".backup $SNAPSHOT"
    start
    took "setup" "$T0"
    ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  reset) reset ;;
  status) curl -fsS -H "X-Redmine-API-Key: $REDMINE_API_KEY" "$REDMINE_URL/users/current.json" >/dev/null && say "up: $REDMINE_URL" ;;
  seed)
    rails_runner PROJECT="${2:?project identifier}" COUNT="${3:?issue count}" \
      bin/rails runner -e production "$SCRIPTS/seed.rb"
    ;;
  query)
    rails_runner PROJECT="${2:?project identifier}" NAME="${3:?query name}" TRACKER_ID="${4:?tracker id}" \
      bin/rails runner -e production "$SCRIPTS/query.rb"
    ;;
  key)
    login="${2:?user login}" key="${3:?API key}"
    [[ "$login" =~ ^[a-z0-9_-]+$ && "$key" =~ ^[0-9a-f]{40}$ ]] || { say "key: a plain login and 40 hex characters"; exit 2; }
    # Straight into the tokens table: a Rails process would take seconds.
    as_redmine sqlite3 "$DB" ".timeout 10000" \
      "DELETE FROM tokens WHERE action = 'api' AND user_id = (SELECT id FROM users WHERE login = '$login');
       INSERT INTO tokens (user_id, action, value, created_on, updated_on)
         SELECT id, 'api', '$key', datetime('now'), datetime('now') FROM users WHERE login = '$login';"
    ;;
  *)
    echo "usage: $0 setup|start|stop|restart|reset|status|seed PROJECT COUNT|query PROJECT NAME TRACKER_ID|key LOGIN KEY" >&2
    exit 2
    ;;
esac
