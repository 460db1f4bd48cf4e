// The browser side of tests/browser: livekit-client joins a kitewire room, publishes the fake camera and
// counts the frames it decodes of every video track it subscribes to. The test drives it through window.kw.
"use strict";

const LK = window.LivekitClient;

window.kw = {
  room: null,
  // identity -> frames presented by the <video> element (requestVideoFrameCallback)
  presented: {},
  errors: [],

  // roomOptions are livekit-client RoomOptions over these defaults (e.g. { dynacast: true }).
  async join(url, token, roomOptions = {}) {
    const room = new LK.Room({ adaptiveStream: false, dynacast: false, ...roomOptions });
    room.on(LK.RoomEvent.TrackSubscribed, (track, publication, participant) => {
      if (track.kind !== "video") return;
      const element = track.attach();
      element.muted = true;
      element.autoplay = true;
      element.playsInline = true;
      document.getElementById("videos").appendChild(element);
      const identity = participant.identity;
      window.kw.presented[identity] = 0;
      const count = () => {
        window.kw.presented[identity] += 1;
        element.requestVideoFrameCallback(count);
      };
      element.requestVideoFrameCallback(count);
      element.play().catch((error) => window.kw.errors.push(String(error)));
    });
    await room.connect(url, token, { autoSubscribe: true });
    this.room = room;
    return room.localParticipant.identity;
  },

  async publishCamera(codec, simulcast) {
    const publication = await this.room.localParticipant.setCameraEnabled(
      true,
      { resolution: { width: 640, height: 480, frameRate: 30 } },
      { videoCodec: codec, simulcast: simulcast, backupCodec: false },
    );
    return publication.trackSid;
  },

  // framesDecoded of every inbound video stream, by the publisher's identity.
  async decoded() {
    const out = {};
    for (const participant of this.room.remoteParticipants.values()) {
      for (const publication of participant.videoTrackPublications.values()) {
        const track = publication.track;
        if (!track || !track.receiver) continue;
        const report = await track.receiver.getStats();
        let frames = 0;
        report.forEach((stat) => {
          if (stat.type === "inbound-rtp" && stat.kind === "video") frames += stat.framesDecoded || 0;
        });
        out[participant.identity] = frames;
      }
    }
    return out;
  },

  // What the publisher PeerConnection sends: codec mime type and encoded frames per outbound stream.
  async sent() {
    const publication = [...this.room.localParticipant.videoTrackPublications.values()][0];
    const sender = publication.track.sender;
    const report = await sender.getStats();
    const codecs = {};
    report.forEach((stat) => {
      if (stat.type === "codec") codecs[stat.id] = stat.mimeType;
    });
    const streams = [];
    report.forEach((stat) => {
      if (stat.type === "outbound-rtp") {
        streams.push({ rid: stat.rid || "", mime: codecs[stat.codecId] || "", framesEncoded: stat.framesEncoded || 0 });
      }
    });
    return streams;
  },

  async leave() {
    if (this.room) await this.room.disconnect();
  },
};
