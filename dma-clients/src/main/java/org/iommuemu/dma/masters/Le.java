package org.iommuemu.dma.masters;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/** Little-endian 64-bit words in byte arrays, without allocation. */
final class Le {
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private Le() {}

    static long get64(byte[] b, int offset) {
        return (long) LONG.get(b, offset);
    }

    static void put64(byte[] b, int offset, long value) {
        LONG.set(b, offset, value);
    }
}
