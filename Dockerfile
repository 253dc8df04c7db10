# rdsaudit in a container: a static binary (CGO_ENABLED=0; SQLite is pure Go) on a
# minimal non-root base (no shell, no package manager). Build from the repository root:
#   docker build -t rdsaudit:latest .
# The .git directory is copied so that `rdsaudit version` names the commit.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/rdsaudit ./cmd/rdsaudit

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rdsaudit /usr/local/bin/rdsaudit
USER 65532:65532
WORKDIR /var/lib/rdsaudit
ENTRYPOINT ["/usr/local/bin/rdsaudit"]
CMD ["--help"]
