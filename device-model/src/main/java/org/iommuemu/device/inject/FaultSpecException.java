package org.iommuemu.device.inject;

/**
 * A fault specification the injector refuses; the message names the field. The bus maps the base class to
 * INVALID_ARGUMENT and the subclasses to their own codes.
 */
public class FaultSpecException extends IllegalArgumentException {
    private final String field;

    public FaultSpecException(String field, String message) {
        super(field.isEmpty() ? message : field + ": " + message);
        this.field = field;
    }

    /** The field at fault ("trigger.probability", "params.bit"...), or empty. */
    public String field() {
        return field;
    }

    /** The kind is planned but not implemented yet. */
    public static final class Unimplemented extends FaultSpecException {
        public Unimplemented(InjectionKind kind) {
            super("kind", "injection kind " + kind + " is not implemented yet (implemented: "
                    + java.util.Arrays.stream(InjectionKind.values()).filter(InjectionKind::implemented)
                            .map(Enum::name).collect(java.util.stream.Collectors.joining(", ")) + ")");
        }
    }

    /** An instance or fault id that does not exist. */
    public static final class NotFound extends FaultSpecException {
        public NotFound(String field, String message) {
            super(field, message);
        }
    }

    /** A memory address outside RAM. */
    public static final class OutOfRange extends FaultSpecException {
        public OutOfRange(String field, String message) {
            super(field, message);
        }
    }
}
