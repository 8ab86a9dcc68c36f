# vaglio with its GPU extras (vLLM, NeMo, training, export) on CUDA. Build: docker build -t vaglio .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/vaglio \
    PATH=/opt/vaglio/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3 python3-venv python3-dev build-essential ffmpeg espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY flows ./flows
COPY manifests ./manifests
COPY licenses ./licenses
COPY training ./training

RUN python3 -m venv /opt/vaglio \
    && pip install --upgrade pip \
    && pip install '.[gpu,train,export]' \
    && python -m pipeline.text.offline_lid \
    && python -m pipeline.speakers.encoder

WORKDIR /work
ENTRYPOINT ["vaglio"]
CMD ["--help"]
