"""Who speaks: a voice per segment, speakers per recording, speaker clusters across a corpus."""
