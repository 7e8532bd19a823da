package org.iommuemu.device.masters;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;

/**
 * A default machine (SMMUv3 "smmu0" at reset, so DMA bypasses translation and iova = pa) behind an in-process
 * bus, with the CPU's view of memory over {@code Machine.MemRead/MemWrite} and a DMA client.
 */
final class MasterBus implements AutoCloseable {
    static final String SMMU = "smmu0";

    final Machine machine;
    final BusServer server;
    final ManagedChannel channel;
    final MachineGrpc.MachineBlockingStub cpu;
    final DmaClient client;

    MasterBus() throws IOException {
        machine = new Machine(MachineConfig.defaults());
        String name = "masters-test-" + UUID.randomUUID();
        server = BusServer.inProcess(machine, name).start();
        channel = InProcessChannelBuilder.forName(name).build();
        cpu = MachineGrpc.newBlockingStub(channel);
        client = DmaClient.over(channel);
    }

    long ramBase() {
        return machine.memory().regions().get(0).base();
    }

    /** Programs the SMMU for stage-1 translation in guest memory from {@code ramBase() + 16 MiB}. */
    Stage1 stage1() {
        return new Stage1(this, SMMU, ramBase() + (16L << 20));
    }

    void write(long pa, byte[] data) {
        cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa).setData(ByteString.copyFrom(data)).build());
    }

    byte[] read(long pa, int length) {
        return cpu.memRead(MemReadRequest.newBuilder().setAddress(pa).setLength(length).build())
                .getData().toByteArray();
    }

    void write64(long pa, long... words) {
        ByteBuffer b = ByteBuffer.allocate(words.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long w : words) {
            b.putLong(w);
        }
        write(pa, b.array());
    }

    long read64(long pa) {
        return ByteBuffer.wrap(read(pa, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        server.close();
    }
}
