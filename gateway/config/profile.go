package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Cloud profiles for uplink.profile.
const (
	ProfileAWSIoT      = "aws-iot"
	ProfileAzureIoTHub = "azure-iot-hub"
)

// Limits of the clouds, from their documentation (see the README's
// "Clouds" section for the sources).
const (
	// AWS IoT Core: payload 128 KB, topic 256 bytes with at most 7
	// slashes, client id 128 bytes, keep-alive 30..1200 s, persistent
	// sessions 1 h by default and 7 days at most.
	awsMaxMessage    = 128 << 10
	awsMaxTopicBytes = 256
	awsMaxSlashes    = 7
	awsMaxClientID   = 128
	awsKeepaliveMin  = 30 * time.Second
	awsKeepaliveMax  = 1200 * time.Second
	awsSessionDef    = time.Hour
	awsSessionMax    = 7 * 24 * time.Hour
	awsALPN          = "x-amzn-mqtt-ca" // X.509 client certificate on port 443
	awsALPNCustom    = "mqtt"           // custom authorizer on port 443
	// Azure IoT Hub: device-to-cloud messages 256 KB, keep-alive at most
	// 1177 s, MQTT 3.1.1 on port 8883.
	azureMaxMessage   = 256 << 10
	azureKeepaliveMax = 1177 * time.Second
	azureAPIVersion   = "2021-04-12"
)

// thingNameRE is an AWS IoT thing name.
var thingNameRE = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// profile checks the value of uplink.profile.
func (v *validator) profile() {
	switch v.c.Uplink.Profile {
	case "", ProfileAWSIoT, ProfileAzureIoTHub:
	default:
		v.add("uplink.profile", "%q must be %q or %q (or unset for any MQTT broker)",
			v.c.Uplink.Profile, ProfileAWSIoT, ProfileAzureIoTHub)
	}
}

// ProfileWarnings returns the settings that cannot work with the cloud
// named by uplink.profile, each with its file:line and key path (a key
// left at its default points at the profile line). It does no I/O: it
// reads only the configuration, and knows the clouds' documented limits,
// not an account's raised quotas. Nil without a profile or an uplink.
func (c *Config) ProfileWarnings() []*Problem {
	u := c.Uplink
	if u.URL == "" || u.Profile == "" {
		return nil
	}
	w := &warner{validator: validator{c: c}}
	pu, err := url.Parse(u.URL)
	if err != nil {
		return nil // a Validate error
	}
	switch u.Profile {
	case ProfileAWSIoT:
		w.aws(pu)
	case ProfileAzureIoTHub:
		w.azure(pu)
	}
	slices.SortStableFunc(w.probs, func(a, b *Problem) int { return a.Line - b.Line })
	return w.probs
}

// warner collects warnings like validator collects problems.
type warner struct{ validator }

// warn adds a warning at path, or at uplink.profile when path is not in
// the file (a default): the profile is what makes the default wrong.
func (w *warner) warn(path, format string, args ...any) {
	ps := w.c.pos
	if ps != nil && !ps.has(path) {
		line := ps.line("uplink.profile")
		w.add(path, format, args...)
		w.probs[len(w.probs)-1].Line = line
		return
	}
	w.add(path, format, args...)
}

// hasCommands reports whether any device accepts remote commands.
func (c *Config) hasCommands() (device int, ok bool) {
	for i, d := range c.Devices {
		if len(d.Commands) > 0 {
			return i, true
		}
	}
	return 0, false
}

func (w *warner) aws(pu *url.URL) {
	u := w.c.Uplink
	port := pu.Port()
	if pu.Scheme != "mqtts" || port != "8883" && port != "443" {
		w.warn("uplink.url", "%q: AWS IoT Core takes MQTT over TLS only, on port 8883 or on 443 with ALPN: use mqtts://ENDPOINT:8883", u.URL)
	}
	customAuth := slices.Contains(u.ALPN, awsALPNCustom) && u.Username != ""
	if port == "443" && !slices.Contains(u.ALPN, awsALPN) && !customAuth {
		w.warn("uplink.alpn", "AWS IoT Core serves MQTT on port 443 only to clients that offer ALPN %q (X.509) or %q (custom authorizer): set alpn = [%q]", awsALPN, awsALPNCustom, awsALPN)
	}
	if u.CertFile == "" && !customAuth {
		w.warn("uplink.cert_file", "AWS IoT Core authenticates devices by X.509 client certificate: set cert_file and key_file (or, on port 443, a custom authorizer with alpn = [%q] and a username)", awsALPNCustom)
	}
	w.noQoS2("AWS IoT Core supports QoS 0 and 1 only and does not answer a QoS 2 PUBLISH",
		"AWS IoT Core supports QoS 0 and 1 only and does not answer a QoS 2 SUBSCRIBE")
	if !thingNameRE.MatchString(u.ClientID) {
		w.warn("uplink.client_id", "%q is not an AWS IoT thing name (1 to %d of a-z A-Z 0-9 : _ -): policies that require client id = thing name (iot:Connection.Thing.ThingName) cannot match it", u.ClientID, awsMaxClientID)
	}
	w.topicLimits()
	if k := u.Keepalive.D(); k < awsKeepaliveMin || k > awsKeepaliveMax {
		w.warn("uplink.keepalive", "%v: AWS IoT Core uses a keep-alive of %.0fs to %.0fs and adjusts others", k, awsKeepaliveMin.Seconds(), awsKeepaliveMax.Seconds())
	}
	switch s := u.SessionExpiry.D(); {
	case s > awsSessionMax:
		w.warn("uplink.session_expiry", "%v: AWS IoT Core keeps a persistent session at most 7 days: commands for a gateway offline longer are lost", s)
	case s > awsSessionDef:
		w.warn("uplink.session_expiry", "%v: AWS IoT Core keeps a persistent session 1h unless the account's quota was raised (to at most 7 days): commands for a gateway offline longer are lost", s)
	}
	w.messageSize(awsMaxMessage, "AWS IoT Core")
	if i, ok := w.c.hasCommands(); ok && u.Protocol == "3.1.1" {
		w.warn("uplink.protocol", "with 3.1.1 the uplink subscribes to %s/cmd/# at QoS 2, which AWS IoT Core leaves unanswered (no SUBACK), so the commands of device %q cannot arrive: use protocol = \"5\", whose CONNACK announces Maximum QoS 1",
			u.TopicPrefix, w.c.Devices[i].Name)
	}
}

func (w *warner) azure(pu *url.URL) {
	u := w.c.Uplink
	if pu.Scheme != "mqtts" || pu.Port() != "8883" {
		w.warn("uplink.url", "%q: IoT Hub takes MQTT over TLS on port 8883 (443 is MQTT over WebSocket, which the uplink does not speak): use mqtts://HUB.azure-devices.net:8883", u.URL)
	}
	if u.Protocol != "3.1.1" {
		w.warn("uplink.protocol", "IoT Hub speaks MQTT 3.1.1 (5.0 only on hubs in preview mode): set protocol = \"3.1.1\"; 5.0-only features (message expiry, response topics, topic aliases, session expiry) do not apply")
	}
	wantUser := fmt.Sprintf("%s/%s/?api-version=%s", pu.Hostname(), u.ClientID, azureAPIVersion)
	if u.Username == "" {
		w.warn("uplink.username", "IoT Hub wants the username %q", wantUser)
	} else {
		host, rest, _ := strings.Cut(u.Username, "/")
		dev, query, _ := strings.Cut(rest, "/?")
		switch {
		case host != pu.Hostname():
			w.warn("uplink.username", "%q: IoT Hub wants the hub's host name %q first: %q", u.Username, pu.Hostname(), wantUser)
		case dev != u.ClientID:
			w.warn("uplink.client_id", "%q differs from the device id %q in the username: IoT Hub requires client id = device id", u.ClientID, dev)
		case !strings.Contains(query, "api-version="):
			w.warn("uplink.username", "%q lacks ?api-version=: IoT Hub wants %q", u.Username, wantUser)
		}
	}
	if u.Password == "" && u.PasswordFile == "" && u.CertFile == "" {
		w.warn("uplink.password", "IoT Hub authenticates a device by SAS token (password_file) or X.509 certificate (cert_file, key_file): set one")
	} else if u.Password != "" {
		w.warn("uplink.password", "a SAS token expires (its se=): keep it in password_file, which the uplink reads again when it changes, so a renewed token needs no restart")
	}
	events := "devices/" + u.ClientID + "/messages/events"
	if u.TopicPrefix != events {
		w.warn("uplink.topic_prefix", "%q: IoT Hub takes device-to-cloud messages only on %s/: set topic_prefix = %q", u.TopicPrefix, events, events)
	}
	w.noQoS2("IoT Hub closes the connection on a QoS 2 PUBLISH", "")
	for i, r := range u.Forward {
		if r.Prefix != events && !strings.HasPrefix(r.Prefix, events+"/") {
			w.warn(fmt.Sprintf("uplink.forward[%d].prefix", i), "%q: IoT Hub takes device-to-cloud messages only under %s/", r.Prefix, events)
		}
	}
	if len(u.Forward) > 0 {
		w.warn("uplink.forward[0].filter", "IoT Hub does not keep retained messages: a forwarded retained message reaches the back end once, with the mqtt-retain property, and no later subscriber gets it")
	}
	c2d := "devices/" + u.ClientID + "/messages/devicebound/#"
	for i, r := range u.Receive {
		if r.Filter != c2d && !strings.HasPrefix(r.Filter, "$iothub/") {
			w.warn(fmt.Sprintf("uplink.receive[%d].filter", i), "%q: IoT Hub supports only its documented filters: %q for cloud-to-device messages, $iothub/... for twins and methods", r.Filter, c2d)
		}
	}
	if i, ok := w.c.hasCommands(); ok {
		w.warn(fmt.Sprintf("device[%d].command", i), "remote commands cannot arrive over IoT Hub: the uplink subscribes to %s/cmd/#, and IoT Hub delivers cloud-to-device messages only on %s", u.TopicPrefix, c2d)
	}
	w.messageSize(azureMaxMessage, "IoT Hub")
	if k := u.Keepalive.D(); k > azureKeepaliveMax {
		w.warn("uplink.keepalive", "%v: IoT Hub uses a keep-alive of at most %.0fs", k, azureKeepaliveMax.Seconds())
	}
}

// noQoS2 warns about every QoS 2 setting of the uplink: the qos of its
// publishes and forward rules (pub says why they fail) and of its receive
// rules (sub; "" when the cloud grants QoS 1 instead).
func (w *warner) noQoS2(pub, sub string) {
	u := w.c.Uplink
	if u.QoS == 2 {
		w.warn("uplink.qos", "2: %s: set qos = 1", pub)
	}
	for _, rs := range []struct {
		key   string
		rules []BridgeRule
		why   string
	}{{"forward", u.Forward, pub}, {"receive", u.Receive, sub}} {
		for i, r := range rs.rules {
			path := fmt.Sprintf("uplink.%s[%d].qos", rs.key, i)
			// A rule without its own qos takes uplink.qos, warned above.
			if r.QoS == 2 && rs.why != "" && (w.c.pos == nil || w.c.pos.has(path)) {
				w.warn(path, "2: %s: set qos = 1", rs.why)
			}
		}
	}
}

// messageSize warns when local clients may publish messages that a
// forward rule would hand to a cloud that refuses them.
func (w *warner) messageSize(limit int64, cloud string) {
	if len(w.c.Uplink.Forward) == 0 {
		return
	}
	if n := int64(w.c.Broker.MaxPacketSize); n > limit {
		w.warn("broker.max_packet_size", "%d bytes: local clients may publish messages above %s's %d KB, which [[uplink.forward]] would forward and the cloud refuses: set max_packet_size = \"%dKiB\"",
			n, cloud, limit>>10, limit>>10)
	}
}

// topicLimits checks AWS IoT Core's topic limits against the deepest and
// longest topics the gateway publishes and the filters it subscribes to.
func (w *warner) topicLimits() {
	u := w.c.Uplink
	prefixKey := "uplink.topic_prefix"
	if w.c.pos != nil && !w.c.pos.has(prefixKey) {
		prefixKey = "gateway.topic_prefix"
	}
	p := u.TopicPrefix
	// The gateway's own topics under the remote prefix; an alarm's point
	// name is the driver's, one level of unknown length ("+").
	topics := []string{p + "/status", p + "/cmd/#"}
	for _, d := range w.c.Devices {
		topics = append(topics, p+"/telemetry/"+d.Name, p+"/devices/"+d.Name+"/status", p+"/alarm/"+d.Name+"/+")
		for _, cm := range d.Commands {
			topics = append(topics, p+"/cmd/"+d.Name+"/"+cm.Name+"/result")
		}
	}
	deepest, longest := "", ""
	for _, t := range topics {
		if slashes(t) > slashes(deepest) {
			deepest = t
		}
		if len(t) > len(longest) {
			longest = t
		}
	}
	if n := slashes(deepest); n > awsMaxSlashes {
		w.warn(prefixKey, "topic %s has %d slashes; AWS IoT Core allows at most %d: shorten the prefix %q", deepest, n, awsMaxSlashes, p)
	}
	if len(longest) > awsMaxTopicBytes {
		w.warn(prefixKey, "topic %s is %d bytes; AWS IoT Core allows at most %d", longest, len(longest), awsMaxTopicBytes)
	}
	for i, r := range u.Forward {
		t := r.Filter
		if r.Prefix != "" {
			t = shortestRemote(r)
		}
		if n := slashes(t); n > awsMaxSlashes {
			w.warn(fmt.Sprintf("uplink.forward[%d].prefix", i), "forwarded topics like %s have at least %d slashes; AWS IoT Core allows at most %d", t, n, awsMaxSlashes)
		}
	}
	for i, r := range u.Receive {
		if n := slashes(r.Filter); n > awsMaxSlashes || len(r.Filter) > awsMaxTopicBytes {
			w.warn(fmt.Sprintf("uplink.receive[%d].filter", i), "%q: AWS IoT Core allows filters of at most %d slashes and %d bytes", r.Filter, awsMaxSlashes, awsMaxTopicBytes)
		}
	}
}

// shortestRemote returns the shortest remote topic a forward rule with a
// prefix can produce: its prefix, then the filter's levels after its
// wildcard-free base ("+" stands for one level, "#" for none).
func shortestRemote(r BridgeRule) string {
	base := r.Filter
	if i := strings.IndexAny(base, "+#"); i >= 0 {
		base = base[:i]
	}
	rest := strings.TrimPrefix(r.Filter, base)
	rest = strings.TrimSuffix(strings.TrimSuffix(rest, "#"), "/")
	out := strings.TrimSuffix(r.Prefix, "/")
	if rest != "" {
		out += "/" + strings.TrimPrefix(rest, "/")
	}
	return out
}

// slashes counts a topic's slashes; AWS IoT Core does not count the three
// of a Basic Ingest prefix ($aws/rules/NAME/).
func slashes(t string) int {
	if rest, ok := strings.CutPrefix(t, "$aws/rules/"); ok {
		if _, after, ok := strings.Cut(rest, "/"); ok {
			t = after
		}
	}
	return strings.Count(t, "/")
}
