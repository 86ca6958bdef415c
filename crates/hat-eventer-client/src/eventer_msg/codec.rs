//! The codecs of the `HatEventer` types, declared from their schema shape:
//! a Record is its fields in schema order, a Choice of unit alternatives
//! its index, a one-field wrapper its field. Choices whose alternatives
//! carry values are written out where the type is.

/// `impl Sbs` for a struct encoded as a Record: the listed fields, in
/// schema order (every field, or the codec would not compile). Exported for
/// the clients of other Hat protocols over the same SBS.
#[macro_export]
macro_rules! record {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl $crate::sbs::Sbs for $name {
            #[allow(unused_variables)]
            fn write(&self, w: &mut $crate::sbs::Writer) {
                $( $crate::sbs::Sbs::write(&self.$field, w); )*
            }
            #[allow(unused_variables)]
            fn read(
                r: &mut $crate::sbs::Reader<'_>,
            ) -> Result<Self, $crate::sbs::DecodeError> {
                Ok($name { $( $field: $crate::sbs::Sbs::read(r)?, )* })
            }
        }
    };
}

/// `impl Sbs` for a one-field tuple struct encoded as its field.
macro_rules! newtype {
    ($name:ident) => {
        impl $crate::sbs::Sbs for $name {
            fn write(&self, w: &mut $crate::sbs::Writer) {
                $crate::sbs::Sbs::write(&self.0, w);
            }
            fn read(r: &mut $crate::sbs::Reader<'_>) -> Result<Self, $crate::sbs::DecodeError> {
                $crate::sbs::Sbs::read(r).map($name)
            }
        }
    };
}

/// `impl Sbs` for an enum of unit variants encoded as a Choice whose
/// alternatives are all None: the listed variants, in schema order.
macro_rules! unit_choice {
    ($name:ident { $($variant:ident),+ $(,)? }) => {
        impl $crate::sbs::Sbs for $name {
            fn write(&self, w: &mut $crate::sbs::Writer) {
                const ALL: &[$name] = &[$($name::$variant),+];
                let index = ALL.iter().position(|v| v == self).unwrap_or_default();
                w.choice(index);
            }
            fn read(
                r: &mut $crate::sbs::Reader<'_>,
            ) -> Result<Self, $crate::sbs::DecodeError> {
                const ALL: &[$name] = &[$($name::$variant),+];
                let at = r.offset();
                let index = r.choice(ALL.len())?;
                ALL.get(index).copied().ok_or_else(|| {
                    r.error(at, format!("{} alternative {index}", stringify!($name)))
                })
            }
        }
    };
}

/// `impl Message`: the Chatter `data.type` each message type travels as.
/// Exported for the clients of other Hat protocols over Chatter.
#[macro_export]
macro_rules! message_types {
    ($($name:ident = $type_name:literal),+ $(,)?) => {
        $(
            impl $crate::eventer_msg::Message for $name {
                const TYPE: &'static str = $type_name;
            }
        )+
    };
}
