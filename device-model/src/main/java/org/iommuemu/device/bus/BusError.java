package org.iommuemu.device.bus;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * A request the bus refuses: the gRPC status code and a message that names the offending field. Thrown
 * inside the services and turned into an RPC error (unary calls) or a {@code RequestError} (one request
 * of a Transfer stream). Carries no stack trace.
 */
final class BusError extends RuntimeException {
    private final Status.Code code;

    BusError(Status.Code code, String message) {
        super(message, null, false, false);
        this.code = code;
    }

    Status.Code code() {
        return code;
    }

    StatusRuntimeException toStatus() {
        return code.toStatus().withDescription(getMessage()).asRuntimeException();
    }

    static BusError invalidArgument(String message) {
        return new BusError(Status.Code.INVALID_ARGUMENT, message);
    }

    static BusError outOfRange(String message) {
        return new BusError(Status.Code.OUT_OF_RANGE, message);
    }

    static BusError notFound(String message) {
        return new BusError(Status.Code.NOT_FOUND, message);
    }

    static BusError permissionDenied(String message) {
        return new BusError(Status.Code.PERMISSION_DENIED, message);
    }

    static BusError failedPrecondition(String message) {
        return new BusError(Status.Code.FAILED_PRECONDITION, message);
    }

    static BusError resourceExhausted(String message) {
        return new BusError(Status.Code.RESOURCE_EXHAUSTED, message);
    }

    static BusError alreadyExists(String message) {
        return new BusError(Status.Code.ALREADY_EXISTS, message);
    }

    static BusError unimplemented(String message) {
        return new BusError(Status.Code.UNIMPLEMENTED, message);
    }

    static BusError cancelled(String message) {
        return new BusError(Status.Code.CANCELLED, message);
    }

    static BusError unavailable(String message) {
        return new BusError(Status.Code.UNAVAILABLE, message);
    }
}
