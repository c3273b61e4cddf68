-- measure_international: per school and year, the school-year international figures
-- (students from abroad, training person-days, posts, standards, awards, certificates,
-- cooperation projects), summed in case a file repeats the school.
-- Output grain: one row per (year, school_code, measure_id).
with international as (
    select * from curated_international
),

per_school as (
    select
        year,
        school_code,
        sum(international_students_count)::double as international_students_count,
        sum(foreign_trainee_person_days)::double as foreign_trainee_person_days,
        sum(teacher_overseas_person_days)::double as teacher_overseas_person_days,
        sum(international_posts_count)::double as international_posts_count,
        sum(international_standards_count)::double as international_standards_count,
        sum(international_awards_count)::double as international_awards_count,
        sum(international_certificate_holders_count)::double
            as international_certificate_holders_count,
        sum(international_cooperation_projects_count)::double
            as international_cooperation_projects_count
    from international
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
