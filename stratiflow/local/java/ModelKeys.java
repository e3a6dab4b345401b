package io.stratiflow.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * The model key of a raw record, read in Java so the job can key records without a Python hop.
 *
 * <p>Mirrors {@code stratiflow.validation.parse.model_key_of}: for every record the Python validator
 * accepts, both return the record's {@code key} (the last one if repeated, {@code "default"} when
 * absent or null). Anything else yields {@code ""}; such records only become dead letters, so
 * where they are routed does not matter. The model operator checks the key again after parsing.
 */
public final class ModelKeys {
    public static final String DEFAULT_KEY = "default";
    private static final JsonFactory JSON = new JsonFactory();

    private ModelKeys() {}

    public static String of(byte[] value, int maxPayloadBytes) {
        if (value == null || value.length == 0 || value.length > maxPayloadBytes) {
            return "";
        }
        try (JsonParser parser = JSON.createParser(value)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return "";
            }
            String key = DEFAULT_KEY;
            JsonToken token;
            while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                String name = parser.currentName();
                JsonToken field = parser.nextToken();
                if ("key".equals(name)) {
                    if (field == JsonToken.VALUE_STRING) {
                        key = parser.getText();
                    } else if (field == JsonToken.VALUE_NULL) {
                        key = DEFAULT_KEY;
                    } else {
                        key = "";
                        parser.skipChildren();
                    }
                } else {
                    parser.skipChildren();
                }
            }
            if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
                return "";  // truncated, or data after the object: Python refuses both
            }
            return key;
        } catch (Exception | StackOverflowError e) {
            return "";
        }
    }
}
