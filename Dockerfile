# The one image of totesys-transform: the Lambda function behind the S3/EventBridge
# triggers, the schedules, the maintenance job and the HTTP control plane (Mangum).
# Built by `sam build` (infra/template.yaml, Metadata: DockerContext/Dockerfile).
#
# Python 3.12 on Amazon Linux 2023 (glibc 2.34): newer wheels are manylinux_2_28,
# which the Amazon Linux 2 based python:3.11 image (glibc 2.26) cannot install.
# deltalake + polars install to ~450 MB (no pyarrow: Polars hands frames to delta-rs
# through the Arrow C stream interface), over the 250 MB zip
# limit, hence an image.
FROM public.ecr.aws/lambda/python:3.12

# Dependencies first: this layer is reused until requirements-lambda.txt changes.
# Wheels only, so a missing wheel fails the build instead of compiling Rust/C++.
COPY requirements-lambda.txt ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir --only-binary=:all: \
        -r ${LAMBDA_TASK_ROOT}/requirements-lambda.txt \
        --target "${LAMBDA_TASK_ROOT}" \
    && rm ${LAMBDA_TASK_ROOT}/requirements-lambda.txt

COPY service/ ${LAMBDA_TASK_ROOT}/service/
COPY transforms/ ${LAMBDA_TASK_ROOT}/transforms/
# Bytecode built into the image: /var/task is read-only, so without it every cold start would
# compile the project's ~110 modules again (~0.1 s).
RUN python -m compileall -q ${LAMBDA_TASK_ROOT}/service ${LAMBDA_TASK_ROOT}/transforms

# Defaults for a local `docker run`; the SAM template sets the same values
# (tests/infra/test_template.py checks they agree).
ENV POWERTOOLS_SERVICE_NAME=totesys-transform \
    POWERTOOLS_METRICS_NAMESPACE=TotesysTransform \
    POWERTOOLS_LOG_LEVEL=INFO

CMD ["service.handler.lambda_handler"]
