package org.iommuemu.device.remote;

import io.grpc.StatusRuntimeException;
import org.iommuemu.core.bits.Bits;

/**
 * The bus failed under a remote access (the server went away, a deadline passed, the request was refused for a
 * reason that is not the address): not something the hardware would answer, so not a memory fault or a register
 * value. Unchecked, so it unwinds a driver operation to whoever started it, with the RPC and the status.
 */
public final class BusUnavailableException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BusUnavailableException(String rpc, long address, StatusRuntimeException cause) {
        super(rpc + " at " + Bits.hex(address) + " failed: " + cause.getStatus().getCode()
                + (cause.getStatus().getDescription() != null ? ": " + cause.getStatus().getDescription() : ""),
                cause);
    }

    /** The bus answered something no correct server sends (a reply of the wrong size, no subscription). */
    BusUnavailableException(String message) {
        super(message);
    }

    BusUnavailableException(String message, StatusRuntimeException cause) {
        super(message + ": " + cause.getStatus().getCode() + (cause.getStatus().getDescription() != null ? ": "
                + cause.getStatus().getDescription() : ""), cause);
    }
}
