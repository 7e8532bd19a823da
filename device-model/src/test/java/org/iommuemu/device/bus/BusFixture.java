package org.iommuemu.device.bus;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.MachineGrpc;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** A machine behind an in-process bus, with channels that are closed at the end of the test. */
final class BusFixture implements AutoCloseable {
    final Machine machine;
    final BusServer server;
    final String name = "bus-test-" + UUID.randomUUID();
    private final List<ManagedChannel> channels = new ArrayList<>();

    BusFixture() throws IOException {
        this(MachineConfig.defaults());
    }

    BusFixture(MachineConfig config) throws IOException {
        machine = new Machine(config);
        server = BusServer.inProcess(machine, name).start();
    }

    /** A new client connection. */
    ManagedChannel channel() {
        ManagedChannel c = InProcessChannelBuilder.forName(name).build();
        channels.add(c);
        return c;
    }

    MachineGrpc.MachineBlockingStub cpu() {
        return MachineGrpc.newBlockingStub(channel());
    }

    DmaGrpc.DmaBlockingStub dma(ManagedChannel c) {
        return DmaGrpc.newBlockingStub(c);
    }

    DmaClient client() {
        return DmaClient.over(channel());
    }

    long ramBase() {
        return machine.memory().regions().get(0).base();
    }

    long ramEnd() {
        var r = machine.memory().regions().get(machine.memory().regions().size() - 1);
        return r.base() + r.size();
    }

    /** Asserts that {@code call} fails with {@code code} and a message containing {@code text}. */
    static void assertStatus(ThrowableAssert.ThrowingCallable call, io.grpc.Status.Code code, String text) {
        assertThatThrownBy(call)
                .isInstanceOf(StatusRuntimeException.class)
                .satisfies(e -> {
                    StatusRuntimeException s = (StatusRuntimeException) e;
                    org.assertj.core.api.Assertions.assertThat(s.getStatus().getCode()).isEqualTo(code);
                    org.assertj.core.api.Assertions.assertThat(s.getStatus().getDescription()).contains(text);
                });
    }

    @Override
    public void close() {
        for (ManagedChannel c : channels) {
            c.shutdownNow();
        }
        try {
            for (ManagedChannel c : channels) {
                c.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        server.close();
    }
}
