# syntax=docker/dockerfile:1
# Build: a static, CGO-free binary (modernc.org/sqlite is pure Go).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/jmlgate ./cmd/jmlgate \
 && mkdir -p /out/data

# Run: no shell, no package manager, non-root, the SQLite file on a volume.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jmlgate /usr/local/bin/jmlgate
COPY config.example.yaml /etc/jmlgate/config.example.yaml
# distroless nonroot is uid 65532; the volume must be writable by it.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/jmlgate"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--db", "/data/jmlgate.db"]
