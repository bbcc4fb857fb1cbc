# Sourced by the scripts that build Go tools (never run on its own): keeps Go's
# module and build caches under the project's cache directory instead of ~/go
# and ~/.cache/go-build, so `rm -rf "${SUBLARR_CACHE_DIR:-$HOME/.cache/sublarr-telemetry}"`
# removes everything the builds left behind.
# Sets CACHE (the project cache directory) for the script that sources it.
CACHE=${SUBLARR_CACHE_DIR:-$HOME/.cache/sublarr-telemetry}
export GOPATH=${SUBLARR_GOPATH:-$CACHE/go}
export GOMODCACHE=${SUBLARR_GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${SUBLARR_GOCACHE:-$CACHE/go/build}
# A go.work above the cache, or a -mod=vendor in GOFLAGS, must not steer the
# build; -modcacherw keeps the module cache deletable with a plain rm -rf.
export GOWORK=off
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod -modcacherw"
