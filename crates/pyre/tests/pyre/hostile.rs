//! Hostile haystacks must not make any engine take long.
