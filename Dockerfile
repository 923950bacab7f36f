# Ratify v1.4.6 with the awssigner verifier plugin baked in at
# /.ratify/plugins/awssigner, where Ratify looks for a Verifier whose
# spec.name is awssigner (the chart's Verifier). Build from the repository
# root, for the architectures of your nodes:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t <registry>/ratify-awssigner:v1.4.6 --push .
#
# Keep the tag v1.4.6: Ratify's chart pulls its CRD image as
# <image.crdRepository>:<image.tag>. docs/kubernetes.md has the Ratify values.

# Go toolchain of the build stage; at least the go directive of go.mod.
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=0.1.0
WORKDIR /src
# Modules first, so the download layer is reused while only sources change.
COPY go.mod go.sum ./
RUN go mod download
# Only what the plugin is built from (no bin/, no tests' modules).
COPY internal/ internal/
COPY plugins/ plugins/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/awssigner ./plugins/verifier/awssigner

# The final image is Ratify's own, unchanged but for the plugin: the same
# entrypoint, user (65532) and plugin directory ($RATIFY_CONFIG/plugins).
FROM ghcr.io/notaryproject/ratify:v1.4.6
COPY --from=build --chown=65532:65532 /out/awssigner /.ratify/plugins/awssigner
