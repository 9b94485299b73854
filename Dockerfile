# syntax=docker/dockerfile:1
# One image per service, from one parameterised Dockerfile:
#
#   docker build --build-arg SERVICE=profiles --build-arg PORT=50051 -t crm-profiles:dev .
#   docker build --build-arg SERVICE=tickets  --build-arg PORT=50052 -t crm-tickets:dev .
#   docker build --build-arg SERVICE=gateway  --build-arg PORT=8080  -t crm-gateway:dev .
#
# (`make images` builds one per line of services/suite.tsv.) The runtime
# image is distroless: no shell, no package manager, the binary and
# glibc/libgcc only, running as the distroless `nonroot` user 65532, as the
# Kubernetes manifests require
# (runAsNonRoot, readOnlyRootFilesystem). Configuration comes from CRM_*
# environment variables (`crm-<service> --help`).

ARG SERVICE=profiles

FROM rust:1.95-bookworm AS build
ARG SERVICE
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target directory between builds of
# the same builder; the binary is copied out because a cache mount is not
# part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=crm-target-release \
    cargo build --release --locked -p "crm-${SERVICE}" --bin "crm-${SERVICE}" \
    && install -D -m 0755 "target/release/crm-${SERVICE}" /out/crm-service

FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE
# The port the service listens on in a pod (CRM_LISTEN_ADDR=0.0.0.0:<port>):
# gRPC for profiles and tickets, HTTP for the gateway.
ARG PORT=50051
LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="CRM suite: crm-${SERVICE} (port ${PORT})" \
      org.opencontainers.image.licenses="Apache-2.0"
# Exec-form ENTRYPOINT cannot expand ${SERVICE}, hence one fixed path in
# every image; the image name (crm-<service>) says which binary it is.
COPY --from=build /out/crm-service /usr/local/bin/crm-service
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/usr/local/bin/crm-service"]
