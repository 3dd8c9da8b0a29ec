# defenderharvester container image.
#
#   docker build --pull -t defenderharvester .
#   docker run --rm defenderharvester version
#
# The image runs `serve` with /etc/defenderharvester/config.yaml (mount it);
# state goes to /var/lib/defenderharvester. README.md, "Operating it".
# deploy/deploy_test.go lints this file; .ci/run builds the binary with the
# same go build line.

# ---- build: a static binary -------------------------------------------------
# golang:1.26 sets GOTOOLCHAIN=local: an image older than go.mod's
# `go 1.26.8` fails at `go mod download` (build with --pull) instead of
# fetching another toolchain. The build stage runs on the builder's own
# platform and cross-compiles for the target (docker buildx --platform).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
# The whole context, .git included (.dockerignore keeps it): `go build`
# stamps the VCS revision, commit time and dirty flag (and a module version
# derived from them) only when it finds the .git directory; the git in
# the golang image reads it. The default -buildvcs=auto is deliberate:
# a context without .git (a tarball, or a git worktree whose .git is a
# file pointing outside the context) builds unstamped instead of failing,
# and `defenderharvester version` then says "revision unknown". .git
# stays in this stage: the final image holds only the binary.
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/defenderharvester ./cmd/defenderharvester
# The state directory, owned by the runtime user: a named volume mounted
# there starts with this owner and mode (distroless has no shell to mkdir).
RUN mkdir -p /out/state && chmod 0700 /out/state

# ---- runtime: distroless static, non-root -------------------------------------
# CA certificates, tzdata, /etc/passwd with nonroot (65532); no shell, no
# package manager. Pin by digest for reproducible deployments.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="defenderharvester" \
      org.opencontainers.image.description="Harvests Microsoft Defender for Endpoint sensitive-action telemetry into SIEMs" \
      org.opencontainers.image.source="https://github.com/defenderharvester/defenderharvester" \
      org.opencontainers.image.url="https://github.com/defenderharvester/defenderharvester" \
      org.opencontainers.image.documentation="https://github.com/defenderharvester/defenderharvester#operating-it" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/defenderharvester /defenderharvester
COPY --from=build --chown=65532:65532 /out/state /var/lib/defenderharvester
USER 65532:65532
# /metrics, /healthz (liveness), /readyz (readiness) of `serve --listen :9464`.
EXPOSE 9464
VOLUME ["/var/lib/defenderharvester"]
# SIGTERM (docker stop, Kubernetes) makes serve shut down gracefully within
# serve.shutdown_timeout (45s): give it more, e.g. `docker stop -t 90`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/defenderharvester"]
CMD ["serve", "--config", "/etc/defenderharvester/config.yaml"]
